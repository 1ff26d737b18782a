"""End to end on every real third-party model in ../shared/models (skipped when absent).

Build all of them into one image (default data-free mode, real sample inputs where they ship),
extract, and check every rebuilt model against its original in the TFLM interpreter on the inputs
shipped beside it (the seeded random input and, where available, the real ones, all given to the
build with --samples) plus the 32 inputs the build generates: the promise the build makes.
How well that carries over to inputs the build never saw is measured, not asserted, by
bench/compression.py (held-out SNR column): one random input alone is too few for an SNR to
mean anything (per-input SNRs of a faithful model spread over 30 dB).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from yonoc.frontend import read_model
from yonoc.interpreter import dequantize, generated_inputs
from yonoc.passes.fidelity import snr_db
from yonoc.samples import load_samples

from conftest import (
    needs_shared,
    run_yonoc,
    shared_models,
    shared_real_samples,
    tflm_outputs,
)

pytestmark = [needs_shared, pytest.mark.shared]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("shared")
    real = shared_real_samples(d)
    args = []
    for path in shared_models():
        rand = os.path.splitext(path)[0] + ".rand_in.npy"
        if os.path.exists(rand):
            args += ["--samples", f"{_name(path)}={rand}"]
        if _name(path) in real:
            args += ["--samples", f"{_name(path)}={real[_name(path)]}"]
    run_yonoc(
        "build", *shared_models(), "-o", d / "image.bin", "--report", d / "report.json", *args
    )
    run_yonoc("extract", d / "image.bin", "-o", d / "rebuilt")
    return d, real


def _name(path):
    return os.path.splitext(os.path.basename(path))[0]


@pytest.mark.parametrize("path", shared_models(), ids=_name)
def test_rebuilt_model_is_faithful_on_shipped_inputs(built, path):
    d, real = built
    name = _name(path)
    orig = read_model(path)
    rebuilt = (d / "rebuilt" / f"{name}.tflite").read_bytes()
    inputs = []
    rand = os.path.splitext(path)[0] + ".rand_in.npy"
    if os.path.exists(rand):
        inputs += load_samples(orig, rand, 64)
    if name in real:
        inputs += load_samples(orig, real[name], 64)
    n_real = len(inputs)
    inputs += generated_inputs(orig, 32)
    a, b = tflm_outputs(orig.data, inputs), tflm_outputs(rebuilt, inputs)
    info = orig.outputs[0]
    ya = [dequantize(o, info) for o in a]
    yb = [dequantize(o, info) for o in b]
    signal = sum(float(np.sum(y * y)) for y in ya)
    noise = sum(float(np.sum((y - z) ** 2)) for y, z in zip(ya, yb))
    assert snr_db(signal, noise) >= 20.0
    if n_real and orig.classifier:
        agree = np.mean([np.argmax(x) == np.argmax(y) for x, y in zip(ya[:n_real], yb[:n_real])])
        assert agree >= 0.99


def test_image_meets_the_size_bar(built):
    d, _ = built
    r = json.loads(run_yonoc("inspect", d / "image.bin", "--json").stdout)
    assert r["original_bytes"] == sum(os.path.getsize(p) for p in shared_models())
    assert r["image_bytes"] <= 0.70 * r["original_bytes"]
    report = json.loads((d / "report.json").read_text())
    assert all(m["snr_db"] is None or m["snr_db"] >= 20.0 for m in report["models"])


# MODELS.md: helper models ship no reference files (not compression targets)
HELPER_MODELS = {"audio_preprocessor_int8"}


@pytest.mark.parametrize(
    "path", [p for p in shared_models() if _name(p) not in HELPER_MODELS], ids=_name
)
def test_shipped_reference_outputs_still_match_the_originals(path):
    """Sanity of the harness itself: TFLM here reproduces the reference output stored beside
    every model; a missing reference file fails (the faithfulness tests lean on them)."""
    base = os.path.splitext(path)[0]
    for suffix in (".rand_in.npy", ".tflm_out.npy"):
        assert os.path.isfile(base + suffix), f"reference file missing: {base + suffix}"
    m = read_model(path)
    out = tflm_outputs(m.data, load_samples(m, base + ".rand_in.npy", 1))[0]
    assert np.array_equal(out.reshape(-1), np.load(base + ".tflm_out.npy").reshape(-1))
