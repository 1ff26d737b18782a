"""Odd models, by their inputs and the model list: several inputs, none, large activations,
duplicate names, no models (docs/model-support.md).
Tiny models: tests/odd_models.py; (real) cases: ../shared/models, skipped when absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from odd_models import BO, OP, TT, Net, build, small_cnn, tfl, write

from yonoc import compiler, interpreter
from yonoc.errors import YonocError
from yonoc.frontend import read_model_bytes
from yonoc.options import BuildOptions

from conftest import yonoc_in_process

# --------------------------------------------------------------------------- inputs


def test_model_with_several_inputs_gets_samples_for_each(tmp_path):
    n = Net(13)
    a, b = n.act([1, 4, 4, 2]), n.act([1, 4, 4, 2])
    s = n.op(OP.ADD, [a, b], [n.act([1, 4, 4, 2], scale=0.1)], BO.AddOptions, tfl.AddOptionsT())
    y = n.conv(s, 4)
    data = n.model([a, b], [y])
    ir = read_model_bytes(data, "two")
    xs = interpreter.generated_inputs(ir, 3)
    assert all(isinstance(x, tuple) and len(x) == 2 for x in xs)
    assert not np.array_equal(xs[0][0], xs[0][1])
    np.save(tmp_path / "two.sample.npy", np.zeros((2, 1, 4, 4, 2), np.int8))  # feeds input 0
    res, _ = build(tmp_path, {"two": data}, mode="pq-m")
    assert res.models[0].samples.startswith("2 real") and res.models[0].snr_db is not None


def test_model_without_inputs_needs_no_check(tmp_path):
    n = Net(14)
    x = n.const(n.rng.integers(-100, 100, (1, 8), dtype=np.int8), TT.INT8, Net.q(0.05))
    data = n.model([], [n.fc(x, 4)])
    with pytest.raises(YonocError, match="no inputs.*--no-check"):
        build(tmp_path, {"noin": data})
    res, _ = build(tmp_path, {"noin": data}, check=False)
    assert res.models[0].name == "noin"


def test_tiny_model_with_large_activations_runs_in_tflm(tmp_path):
    # TFLM's Python default arena (10x the model) is far too small for a 600-byte model with
    # 64x64 activations; yonoc sizes the arena from the tensors
    n = Net(15)
    x = n.act([1, 64, 64, 1])
    data = n.model([x], [n.conv(x, 1)])
    assert len(data) < 1000
    res, _ = build(tmp_path, {"big": data}, mode="pq-m")
    assert res.models[0].snr_db is not None and res.models[0].arena_size > 8192


# --------------------------------------------------------------------------- model lists


def test_duplicate_model_names_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p1 = write(tmp_path / "a", "net", small_cnn())
    p2 = write(tmp_path / "b", "net", small_cnn(seed=1))
    for args in ((p1, p2), (p1, p1)):
        p = yonoc_in_process("build", *args, "-o", tmp_path / "img.bin", "--no-check", check=False)
        assert p.returncode == YonocError.exit_code
        assert "duplicate model name 'net'" in p.stderr and "rename one" in p.stderr
    assert not (tmp_path / "img.bin").exists()


def test_empty_model_list_is_refused(tmp_path):
    p = yonoc_in_process("build", "-o", tmp_path / "img.bin", check=False)
    assert p.returncode == YonocError.exit_code
    assert p.stderr.strip() == "yonoc: error: no input models given"
    with pytest.raises(YonocError, match="no input models"):
        compiler.build([], BuildOptions())
