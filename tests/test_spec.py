"""Build specs (yonoc/spec.py) and `yonoc build --spec`."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from yonoc.cli import main
from yonoc.errors import YonocError
from yonoc.ir import Group
from yonoc.options import BuildOptions
from yonoc.spec import apply, load_spec

from conftest import EXAMPLES


def _write(tmp_path, text, name="yonoc.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_spec_parses_models_data_and_options(tmp_path):
    path = _write(
        tmp_path,
        """
[build]
mode = "pq-mopt"
epsilon = 0.5
epochs = 3
reassign = "finetuned"
frozen_biases = false
finer_start = false
finetune = "mymod:hook"
codebooks = "cb.npz"
codewords = 64
subvector_lengths = { a = [8, 4, 2, 4] }

[[model]]
path = "m/a.tflite"
train = "m/a.train.npz"
test = "m/a.test.npz"
epsilon = 0.25

[[model]]
path = "m/b.tflite"
inputs = "m/b.npy"

[[model]]
path = "/abs/c.tflite"
samples = "c.sample.npy"
""",
    )
    spec = load_spec(path)
    assert spec.models == [
        str(tmp_path / "m/a.tflite"),
        str(tmp_path / "m/b.tflite"),
        "/abs/c.tflite",
    ]
    data = dict(spec.data)
    assert data["a"].train == str(tmp_path / "m/a.train.npz") and data["a"].epsilon == 0.25
    assert data["b"].inputs == str(tmp_path / "m/b.npy") and data["b"].train is None
    assert "c" not in data and dict(spec.samples)["c"] == str(tmp_path / "c.sample.npy")
    opts = apply(spec, BuildOptions())
    assert opts.mode == "pq-mopt" and opts.em.epsilon == 0.5 and opts.em.epochs == 3
    assert opts.em.reassign == "finetuned" and opts.em.frozen_biases is False
    assert opts.em.finer_start is False
    assert opts.finetune == "mymod:hook"
    assert opts.frozen_codebooks == str(tmp_path / "cb.npz")
    lengths = opts.codebook.subvector_lengths
    assert opts.codebook.codewords == 64
    assert lengths[Group.CONV3X3] == (8, 4, 2) and lengths[Group.POINTWISE] == (4, 2)
    # explicit command-line values win over the spec
    opts = apply(
        spec,
        BuildOptions(),
        {"mode": "yono", "epsilon": 2.0, "codewords": 256, "subvector_lengths": {}},
    )
    assert opts.mode == "yono" and opts.em.epsilon == 2.0
    assert opts.codebook.codewords == 256 and opts.codebook.subvector_lengths[Group.CONV3X3] == (
        4,
        2,
    )


@pytest.mark.parametrize(
    "text,match",
    [
        ("[build]\nmode = 'fast'\n[[model]]\npath = 'a.tflite'\n", "mode 'fast'"),
        ("[build]\nepsilonn = 1\n[[model]]\npath = 'a.tflite'\n", "unknown \\[build\\] key"),
        ("[[model]]\npath = 'a.tflite'\ntrian = 'x.npz'\n", "unknown key"),
        ("[[model]]\ntrain = 'x.npz'\n", "needs path"),
        ("[build]\nmode = 'yono'\n", "no \\[\\[model\\]\\]"),
        ("[[model]]\npath = 'a.tflite'\ntrain = 'x.npz'\ninputs = 'y.npy'\n", "not both"),
        ("[[model]]\npath = 'a.tflite'\nepsilon = -1\n", "non-negative"),
        ("[[model]\npath = 'a.tflite'\n", "not valid TOML"),
        ("[other]\n[[model]]\npath = 'a.tflite'\n", "unknown table"),
        ("[build]\nreassign = 'best'\n[[model]]\npath = 'a.tflite'\n", "reassign must be one"),
        ("[build]\nfrozen_biases = 1\n[[model]]\npath = 'a.tflite'\n", "true or false"),
        ("[build]\ncodewords = 512\n[[model]]\npath = 'a.tflite'\n", "codewords must be"),
        ("[build]\ncodewords = true\n[[model]]\npath = 'a.tflite'\n", "codewords must be"),
        ("[build]\nsubvector_lengths = [4]\n[[model]]\npath = 'a.tflite'\n", "a table such"),
        ("[build]\nsubvector_lengths = {C = [4]}\n[[model]]\npath = 'a.tflite'\n", "group A or B"),
        ("[build]\nsubvector_lengths = {B = [0]}\n[[model]]\npath = 'a.tflite'\n", "lengths 1..16"),
    ],
)
def test_spec_errors_are_one_line(tmp_path, text, match):
    with pytest.raises(YonocError, match=match) as e:
        load_spec(_write(tmp_path, text))
    assert "\n" not in str(e.value)


def test_missing_spec_file():
    with pytest.raises(YonocError, match="no such build spec"):
        load_spec("/nonexistent/yonoc.toml")


def _need(*names):
    for n in names:
        if not os.path.isfile(os.path.join(EXAMPLES, n)):
            pytest.skip(f"example {n} not present")


HOOK = """
import numpy as np
from yonoc.passes.encode import channel_scales
class Restore:
    '''Non-torch hook: puts back the original weights of the layers in S.'''
    def __call__(self, model, trainable, weights, data):
        return {i: model.weights[i].values * channel_scales(model.weights[i]) for i in trainable}
"""


def test_cli_build_with_spec_and_a_custom_hook(tmp_path, monkeypatch):
    _need(
        "digits_resnet.tflite",
        "digits_resnet.train.npz",
        "digits_resnet.test.npz",
        "imu_cnn1d.tflite",
    )
    (tmp_path / "restorehook.py").write_text(HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    ex = EXAMPLES
    for part, n in (("train", 64), ("test", 200)):  # a subset: every EM step runs TFLM on it
        with np.load(f"{ex}/digits_resnet.{part}.npz") as z:
            np.savez(tmp_path / f"{part}.npz", x=z["x"][:n], y=z["y"][:n])
    spec = _write(
        tmp_path,
        f"""
[build]
epsilon = 1.0
rate_search = false   # Algorithm 1 literally: S stays raw, carrying the hook's weights

[[model]]
path = "{ex}/digits_resnet.tflite"
train = "{tmp_path}/train.npz"
val = "{tmp_path}/test.npz"   # decisions on all 200 (the split would leave 100)
test = "{tmp_path}/test.npz"

[[model]]
path = "{ex}/imu_cnn1d.tflite"
""",
    )
    out, report = tmp_path / "i.bin", tmp_path / "r.json"
    res = CliRunner().invoke(
        main,
        [
            "build",
            "--spec",
            spec,
            "--finetune",
            "restorehook:Restore",
            # the hook trains nothing: pin the paper's weight-space E-step so that S, not the
            # (default) output-aware codes and bias correction, decides the accuracy
            "--encode",
            "nearest",
            "-j",
            "1",
            "-o",
            str(out),
            "--report",
            str(report),
        ],
    )
    assert res.exit_code == 0, res.output
    models = {m["name"]: m for m in json.loads(report.read_text())["models"]}
    r = models["digits_resnet"]
    assert r["accuracy"] >= r["accuracy_original"] - 1.0, res.output
    assert r["finetuned"], res.output
    assert r["rate_counts"].get("raw", 0) == len(r["finetuned"])
    assert models["imu_cnn1d"]["accuracy"] is None  # no data: data-free fidelity mode
    # the image rebuilds to a model carrying the restored (original) weights of S
    from yonoc.backend.image_format import read_image, rebuild
    from yonoc.frontend import read_model

    img = read_image(out.read_bytes())
    k = [t.name for t in img.tasks].index("digits_resnet")
    orig = read_model(f"{ex}/digits_resnet.tflite")
    blob = rebuild(img, k)
    for i in r["finetuned"]:
        t = orig.weights[i]
        assert blob[t.offset : t.offset + t.size] == t.values.tobytes()


def test_cli_spec_with_unknown_data_model_and_bad_hook(tmp_path):
    _need("imu_cnn1d.tflite", "imu_cnn1d.train.npz", "imu_cnn1d.test.npz")
    ex = EXAMPLES
    spec = _write(
        tmp_path,
        f"""
[[model]]
path = "{ex}/imu_cnn1d.tflite"
train = "{ex}/imu_cnn1d.train.npz"
test = "{ex}/imu_cnn1d.test.npz"
""",
    )
    res = CliRunner().invoke(
        main,
        [
            "build",
            "--spec",
            spec,
            "--finetune",
            "nosuchmod:x",
            "-j",
            "1",
            "-o",
            str(tmp_path / "i.bin"),
        ],
    )
    assert res.exit_code == 2 and "cannot import nosuchmod" in res.output
    assert "Traceback" not in res.output


def test_data_files_are_checked(tmp_path):
    _need("imu_cnn1d.tflite")
    from yonoc.frontend import read_model
    from yonoc.passes import em

    m = read_model(os.path.join(EXAMPLES, "imu_cnn1d.tflite"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 7), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(YonocError, match="do not fit model imu_cnn1d"):
        em.load_data(m, em.DataSpec(str(bad), str(bad)))
    nolab = tmp_path / "nolab.npz"
    np.savez(nolab, x=np.zeros((8, 100, 1, 6), np.float32))
    d = em.load_data(m, em.DataSpec(inputs=str(nolab)))
    assert d.y_train is None and len(d.x_train) == 6 and len(d.x_test) == 2
    with pytest.raises(YonocError, match="no such data file"):
        em.load_data(m, em.DataSpec(str(tmp_path / "nope.npz"), str(bad)))


@pytest.mark.parametrize("bad_part", ["train", "val", "test"])
def test_labels_outside_the_model_classes_are_refused_before_the_build(tmp_path, bad_part):
    """A label no output can mean, in any of the three sets, is one clear error up front (the
    validation set judges every decision, so a bad one there matters most)."""
    from yonoc.frontend import read_model
    from yonoc.samples import DataSpec, check_labels

    m = read_model(os.path.join(EXAMPLES, "imu_cnn1d.tflite"))  # 4 classes
    x = np.zeros((4, 100, 1, 6), np.float32)
    paths = {}
    for part in ("train", "val", "test"):
        y = np.array([0, 1, 2, 9 if part == bad_part else 3])
        paths[part] = str(tmp_path / f"{part}.npz")
        np.savez(paths[part], x=x, y=y)
    with pytest.raises(YonocError, match=f"{bad_part}.npz: label 9 is not a class of model"):
        check_labels(m, DataSpec(**paths))


def test_spec_rates_reach_the_build_and_a_flag_overrides_them(tmp_path):
    """subvector_lengths in [build] changes the codebooks the image carries; an explicit
    --subvector-lengths replaces the spec's."""
    _need("digits_mlp.tflite")
    model = os.path.join(EXAMPLES, "digits_mlp.tflite")
    spec = _write(
        tmp_path, f"[build]\nsubvector_lengths = {{ B = [8] }}\n[[model]]\npath = '{model}'\n"
    )

    def weight_bytes(*flags):
        out = tmp_path / "i.bin"
        r = CliRunner().invoke(
            main, ["build", "--spec", spec, "--no-check", "-q", "-o", str(out), *flags]
        )
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["inspect", str(out)])
        return int(r.output.split("int8 bytes -> ")[1].split()[0])

    one_bpw, two_bpw = weight_bytes(), weight_bytes("--subvector-lengths", "B=4")
    # 2 vs 1 bit per weight of 115,968 (1 bpw codewords are twice as long: 4 KiB more)
    assert two_bpw - one_bpw > 115968 // 16
