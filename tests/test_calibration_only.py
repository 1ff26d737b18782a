"""Calibration-only builds (issue 12): unlabelled real inputs, a classifier judged by top-1
agreement within epsilon on the held-back inputs plus an output SNR floor
(fidelity.distillation_target), not by the 20 dB build target."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from yonoc.frontend import read_model
from yonoc.passes import em, encode, fidelity
from yonoc.passes.fidelity import FidelityTarget, Measurement, distillation_target
from yonoc.pq.codebooks import CodebookOptions, learn

from conftest import EXAMPLES, run_yonoc


def test_classifier_on_real_inputs_is_judged_by_agreement_within_epsilon():
    t = distillation_target(FidelityTarget(), 1.0, real=80, classifier=True)
    assert t.min_agreement == pytest.approx(0.99)
    assert t.snr_db == fidelity.AGREEMENT_SNR_FLOOR_DB < FidelityTarget().snr_db
    assert distillation_target(FidelityTarget(), 2.5, 80, True).min_agreement == pytest.approx(
        0.975
    )
    # a user target below the floor is not raised by it
    assert distillation_target(FidelityTarget(6.0), 1.0, 80, True).snr_db == 6.0
    # 15 dB, 99.5 % agreement: within 1 pt, though below 20 dB
    assert Measurement(15.0, 0.995).meets(t) and not Measurement(15.0, 0.995).meets(
        FidelityTarget()
    )
    assert not Measurement(15.0, 0.985).meets(t)  # more than eps pt changed class
    assert not Measurement(fidelity.AGREEMENT_SNR_FLOOR_DB - 1, 1.0).meets(t)  # the floor


@pytest.mark.parametrize("real, classifier", [(0, True), (80, False)])
def test_other_outputs_or_no_real_inputs_keep_the_build_target(real, classifier):
    target = FidelityTarget(20.0, 0.99)
    assert distillation_target(target, 1.0, real, classifier) is target


def _restore_original(model, trainable, weights, data):
    """A non-torch hook (fast, deterministic): layers in S get their original weights back."""
    out = {}
    for i in trainable:
        t = model.weights[i]
        out[i] = (t.values.astype(np.float64) * encode.channel_scales(t)).reshape(t.shape)
    return out


@pytest.fixture(scope="module")
def cancer():
    base = os.path.join(EXAMPLES, "cancer_mlp")
    if not all(os.path.isfile(base + s) for s in (".tflite", ".train.npz")):
        pytest.skip("example cancer_mlp with data not present")
    model = read_model(base + ".tflite")
    encs = encode.encode_model(
        model, learn(model.weights, CodebookOptions(codewords=64, iterations=8))
    )
    data = em.load_data(model, em.DataSpec(inputs=base + ".train.npz"))
    return model, encs, data


def _weight_bytes(out):
    return sum(e.bytes_at(c) for e, c in zip(out.encodings, out.choices))


def test_agreement_codes_more_than_snr_and_holds_epsilon(cancer, monkeypatch):
    model, encs, data = cancer
    assert data.y_train is None and model.classifier  # labels hidden: distillation
    by_agreement = em.run(model, encs, data, em.EMOptions(), _restore_original)
    with monkeypatch.context() as m:  # the previous criterion: the build's 20 dB target
        m.setattr(em, "distillation_target", lambda target, *a: target)
        by_snr = em.run(model, encs, data, em.EMOptions(), _restore_original)
    assert by_snr.judged_by == FidelityTarget()
    assert by_agreement.judged_by == distillation_target(FidelityTarget(), 1.0, 1, True)
    assert by_agreement.passed and by_snr.passed and not by_agreement.fell_back
    assert _weight_bytes(by_agreement) < _weight_bytes(by_snr)
    # measured again, independently, on the held-back inputs the steps were judged on
    x = em.model_inputs(model, data.decide()[0])
    blob = encode.rebuilt_model(
        model, by_agreement.encodings, by_agreement.choices, True, by_agreement.patches
    )
    m = fidelity.Evaluator(model, x, len(x)).measure(blob)
    assert m.agreement >= 0.99 and m.snr_db >= fidelity.AGREEMENT_SNR_FLOOR_DB
    assert m.snr_db < FidelityTarget().snr_db  # the 20 dB target would have refused it


def test_build_summary_and_notes_say_the_criterion(tmp_path):
    base = os.path.join(EXAMPLES, "cancer_mlp")
    if not os.path.isfile(base + ".train.npz"):
        pytest.skip("example cancer_mlp with data not present")
    spec = tmp_path / "spec.toml"
    spec.write_text(
        "[build]\nepochs = 1\ncoded_tries = 1\nmax_iterations = 1\n\n"
        f'[[model]]\npath = "{base}.tflite"\ninputs = "{base}.train.npz"\n'
    )
    out = tmp_path / "img.bin"
    proc = run_yonoc("build", "--spec", spec, "--no-check", "-o", out)
    assert "judged on held-back inputs by top-1 agreement >= 99%" in proc.stdout + proc.stderr
    (note,) = json.loads(run_yonoc("inspect", "--json", out).stdout)["models"]
    assert note["target_agreement"] == pytest.approx(0.99, abs=1e-4)
    assert note["target_snr_db"] == pytest.approx(fidelity.AGREEMENT_SNR_FLOOR_DB, abs=0.01)
