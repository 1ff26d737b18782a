"""`yonoc inspect`: per-model fidelity from the build notes, per-tensor rows (--tensors, --csv,
--json), strict JSON; the notes blob itself (yonoc/backend/notes.py)."""

from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np
import pytest

from yonoc.backend import image_format as fmt
from yonoc.backend import notes
from yonoc.frontend import read_model

from conftest import EXAMPLES, example_models, run_yonoc, yonoc_in_process


def _strict_loads(text):
    def reject(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def built(examples_built):
    return examples_built.image, json.loads(examples_built.report.read_text())


def test_csv_lists_every_weight_tensor_of_every_model(built):
    image, _ = built
    rows = list(csv.DictReader(io.StringIO(run_yonoc("inspect", image, "--csv").stdout)))
    for path in example_models():
        m = read_model(path)
        mine = [r for r in rows if r["model"] == m.name]
        assert len(mine) == len(m.weights), m.name
        for r, w in zip(mine, m.weights):
            assert r["operator"] == w.op_type
            assert r["shape"] == "x".join(map(str, w.shape))
            assert int(r["bytes_before"]) == w.size == math.prod(w.shape)
            assert r["group"] == "AB"[int(w.group)]
            if r["rate"] == "raw":
                assert int(r["bytes_after"]) == w.size
            else:
                bpw = float(r["rate"].removesuffix("bpw"))
                assert int(r["bytes_after"]) == math.ceil(w.size * bpw / 8)
    assert len(rows) == sum(len(read_model(p).weights) for p in example_models())


def test_tensor_rows_agree_with_the_image_and_originals(built):
    image, _ = built
    r = _strict_loads(run_yonoc("inspect", image, "--json", "--tensors").stdout)
    img = fmt.read_image(image.read_bytes())
    originals = {read_model(p).name: read_model(p) for p in example_models()}
    for mi, (m, _task) in enumerate(zip(r["models"], img.tasks)):
        raw = [t for t in m["tensors"] if t["rate"] == "raw"]
        assert len(raw) == m["tensors_raw"]
        assert len(m["tensors"]) - len(raw) == m["tensors_compressed"]
        rebuilt = fmt.rebuild(img, mi)
        orig = originals[m["name"]]
        shares = [t["noise_share"] for t in m["tensors"] if t["noise_share"] is not None]
        if shares:
            assert sum(shares) == pytest.approx(1.0, abs=1e-6)
        for t, w in zip(m["tensors"], orig.weights):
            stored = np.frombuffer(rebuilt, np.int8, w.size, w.offset)
            if t["rate"] == "raw":
                assert np.array_equal(stored, w.values) == t["exact"]
                continue
            # the weight SNR in the notes is of what the image stores, vs the original weights
            from yonoc.passes.encode import channel_scales

            want = notes.weight_snr_db(w.values, stored, channel_scales(w))
            assert t["weight_snr_db"] == pytest.approx(want, abs=0.006)
            assert 0 < t["weight_snr_db"] < 60


def test_default_inspect_shows_fidelity_from_the_notes(built):
    image, report = built
    r = _strict_loads(run_yonoc("inspect", image, "--json").stdout)
    text = run_yonoc("inspect", image).stdout
    for m, b in zip(r["models"], report["models"]):
        assert m["name"] == b["name"]
        assert m["notes"] is True
        assert m["snr_db"] == pytest.approx(b["snr_db"], abs=0.006)
        assert m["agreement"] == pytest.approx(b["agreement"], abs=1e-4)
        real = int(b["samples"].split()[0])
        assert (m["inputs_real"], m["inputs_real"] + m["inputs_generated"]) == (
            real,
            real + int(b["samples"].split()[3]),
        )
        line = next(x for x in text.splitlines() if x.startswith(m["name"] + " "))
        assert f"{m['snr_db']:.1f}" in line and f"{m['inputs_real']}r+" in line


def test_no_notes_leaves_them_out_and_inspect_says_so(tmp_path):
    # one small model, checked: the notes then hold an SNR the bare image must not have
    model = os.path.join(EXAMPLES, "digits_mlp.tflite")
    image, bare = tmp_path / "notes.bin", tmp_path / "bare.bin"
    yonoc_in_process("build", model, "-o", image, "-j", "1")
    yonoc_in_process("build", model, "-o", bare, "--no-notes", "-j", "1")
    with_notes, without = fmt.read_image(image.read_bytes()), fmt.read_image(bare.read_bytes())
    assert without.notes == b"" and len(with_notes.notes) > 0
    assert len(bare.read_bytes()) < len(image.read_bytes())
    # the notes are the only difference: every task rebuilds the same
    for i in range(len(with_notes.tasks)):
        assert fmt.rebuild(with_notes, i) == fmt.rebuild(without, i)
    noted = _strict_loads(run_yonoc("inspect", image, "--json").stdout)
    assert noted["models"][0]["snr_db"] is not None and noted["models"][0]["notes"] is True
    r = _strict_loads(run_yonoc("inspect", bare, "--json", "--tensors").stdout)
    assert all(m["snr_db"] is None and m["notes"] is False for m in r["models"])
    assert all(t["weight_snr_db"] is None for m in r["models"] for t in m["tensors"])
    assert "(no build notes" in run_yonoc("inspect", bare, "--tensors").stdout


def test_json_and_csv_together_is_a_usage_error(built):
    image, _ = built
    p = run_yonoc("inspect", image, "--json", "--csv", check=False)
    assert p.returncode == 2 and p.stderr.startswith("yonoc: error:")


def test_notes_roundtrip_sentinels_and_determinism():
    ms = [
        notes.ModelNote(
            checked=True,
            snr_db=math.inf,
            agreement=None,
            real_inputs=3,
            generated_inputs=32,
            target_snr_db=20.0,
            tensors=[
                notes.TensorNote(64, math.inf, 12.346),
                notes.TensorNote(4096, -math.inf, None),
                notes.TensorNote(9000, 21.5, 400.0),
            ],
        ),
        notes.ModelNote(accuracy_original=97.25, accuracy=96.5, epsilon=1.0),
    ]
    blob = notes.encode(ms)
    assert blob == notes.encode(ms)
    assert len(blob) == notes.HEADER.size + 2 * notes.MODEL.size + 3 * notes.TENSOR.size
    back = notes.decode(blob, 2)
    assert back[0].snr_db == math.inf and back[0].agreement is None
    assert back[0].real_inputs == 3 and back[0].target_snr_db == 20.0
    assert [(t.offset, t.weight_snr_db, t.alone_snr_db) for t in back[0].tensors] == [
        (64, math.inf, 12.35),
        (4096, -math.inf, None),
        (9000, 21.5, 327.66),
    ]
    assert not back[1].checked and back[1].snr_db is None
    assert (back[1].accuracy_original, back[1].accuracy, back[1].epsilon) == (97.25, 96.5, 1.0)
    assert notes.decode(b"", 2) is None
    with pytest.raises(notes.ImageError):
        notes.decode(blob, 3)
    with pytest.raises(notes.ImageError):
        notes.decode(blob[:-1], 2)


def test_notes_of_a_build_with_data_keep_accuracy_and_epsilon(tmp_path):
    pytest.importorskip("torch")
    spec = tmp_path / "spec.toml"
    ex = os.path.dirname(example_models()[0])
    spec.write_text(f"""
[build]
epochs = 1
max_train = 300
epsilon = 1.5
[[model]]
path = "{ex}/digits_mlp.tflite"
train = "{ex}/digits_mlp.train.npz"
test = "{ex}/digits_mlp.test.npz"
""")
    image, report = tmp_path / "image.bin", tmp_path / "report.json"
    # an output SNR target no coded model reaches: judged by accuracy, it is no warning
    p = run_yonoc("build", "--spec", spec, "-o", image, "--report", report, "--snr", "60")
    b = json.loads(report.read_text())["models"][0]
    assert b["snr_db"] < 60 and b["accuracy"] >= b["accuracy_original"] - 1.5, b
    assert "below the fidelity target" not in p.stderr
    assert not any("below the fidelity target" in w for w in b["warnings"])
    m = _strict_loads(run_yonoc("inspect", image, "--json").stdout)["models"][0]
    assert b["accuracy_original"] is not None and b["accuracy"] is not None
    assert m["accuracy_original"] == pytest.approx(b["accuracy_original"], abs=0.006)
    assert m["accuracy"] == pytest.approx(b["accuracy"], abs=0.006)
    assert m["epsilon"] == 1.5 and m["target_snr_db"] is None
    text = run_yonoc("inspect", image).stdout
    assert f"digits_mlp: accuracy {m['accuracy_original']:.2f}% -> {m['accuracy']:.2f}%" in text


def test_inconsistent_notes_cost_the_figures_not_the_image(built, tmp_path):
    """The firmware ignores the notes; inspect shows '-' rather than refusing the image."""
    image, _ = built
    data = bytearray(image.read_bytes())
    off = fmt.read_image(bytes(data)).data.find(notes.MAGIC, 64)
    data[off + 6] ^= 1  # model count no longer matches the task count
    data[12:16] = fmt.crc32(memoryview(data)[16:]).to_bytes(4, "little")
    bad = tmp_path / "bad_notes.bin"
    bad.write_bytes(bytes(data))
    r = _strict_loads(run_yonoc("inspect", bad, "--json").stdout)
    assert all(m["notes"] is False and m["snr_db"] is None for m in r["models"])
