"""The val/test protocol (samples.load_data, spec `val`) and rates inside Algorithm 1."""

from __future__ import annotations

import os

import numpy as np
import pytest

from yonoc.errors import YonocError
from yonoc.frontend import read_model
from yonoc.options import BuildOptions
from yonoc.passes import em, encode
from yonoc.pq.codebooks import CodebookOptions, learn
from yonoc.samples import split_val
from yonoc.spec import apply, load_spec

from conftest import EXAMPLES


def test_split_val_is_seeded_disjoint_and_stratified():
    rng = np.random.default_rng(3)
    x = np.arange(300, dtype=np.float32)[:, None]
    y = rng.integers(0, 3, 300)
    xv, yv, xt, yt = split_val(x, y)
    xv2, _, _, _ = split_val(x, y)
    assert np.array_equal(xv, xv2)  # same seed, same split
    assert not set(xv[:, 0]) & set(xt[:, 0]) and len(xv) + len(xt) == 300
    for c in range(3):  # each class split in half (odd counts: val gets one more)
        n = int(np.sum(y == c))
        assert np.sum(yv == c) == (n + 1) // 2 and np.sum(yt == c) == n // 2
    assert not np.array_equal(split_val(x, y, seed=1)[0], xv)


def _example(name):
    base = os.path.join(EXAMPLES, name)
    if not all(os.path.isfile(base + s) for s in (".tflite", ".train.npz", ".test.npz")):
        pytest.skip(f"example {name} with data not present")
    return read_model(base + ".tflite"), base


def test_load_data_splits_test_only_without_val(tmp_path):
    model, base = _example("digits_mlp")
    d = em.load_data(model, em.DataSpec(base + ".train.npz", base + ".test.npz"))
    with np.load(base + ".test.npz") as z:
        n = len(z["y"])
    assert d.split and "seed" in d.split and d.reports_test
    assert len(d.y_val) + len(d.y_test) == n and len(d.decide()[1]) == len(d.y_val)
    # an explicit val file is used as it is, and test stays whole
    with np.load(base + ".test.npz") as z:
        np.savez(tmp_path / "v.npz", x=z["x"][:40], y=z["y"][:40])
    d = em.load_data(
        model, em.DataSpec(base + ".train.npz", base + ".test.npz", val=str(tmp_path / "v.npz"))
    )
    assert not d.split and len(d.y_val) == 40 and len(d.y_test) == n
    # direct callers without val decide on test (nothing reported apart)
    plain = em.ModelData(d.x_train, d.y_train, d.x_test, d.y_test)
    assert plain.decide()[0] is d.x_test and not plain.reports_test


def test_spec_val_key(tmp_path):
    (tmp_path / "s.toml").write_text(
        '[[model]]\npath = "m.tflite"\ntrain = "a.npz"\nval = "v.npz"\ntest = "t.npz"\n'
    )
    spec = load_spec(str(tmp_path / "s.toml"))
    assert spec.data[0][1].val == str(tmp_path / "v.npz")
    (tmp_path / "s.toml").write_text(
        '[[model]]\npath = "m.tflite"\ntrain = "a.npz"\nval = "v.npz"\n'
    )
    with pytest.raises(YonocError, match="val data needs"):
        load_spec(str(tmp_path / "s.toml"))
    (tmp_path / "s.toml").write_text('[build]\nrate_search = 1\n[[model]]\npath = "m.tflite"\n')
    with pytest.raises(YonocError, match="rate_search"):
        load_spec(str(tmp_path / "s.toml"))
    (tmp_path / "s.toml").write_text(
        '[build]\ndevice = "cuda:1"\ncoded_tries = 2\n[[model]]\npath = "m.tflite"\n'
    )
    spec = load_spec(str(tmp_path / "s.toml"))
    em_opts = apply(spec, BuildOptions()).em
    assert (em_opts.device, em_opts.coded_tries) == ("cuda:1", 2)
    (tmp_path / "s.toml").write_text('[build]\ndevice = "tpu"\n[[model]]\npath = "m.tflite"\n')
    with pytest.raises(YonocError, match="device must be"):
        load_spec(str(tmp_path / "s.toml"))


class Restore:
    """Finetunes by restoring the original weights of the layers in S (no torch)."""

    def __call__(self, model, trainable, weights, data):
        return {
            i: (model.weights[i].values * encode.channel_scales(model.weights[i])).reshape(
                model.weights[i].shape
            )
            for i in trainable
        }


def test_rates_inside_the_loop_beat_coarsest_or_raw():
    """With every rate of the codebook set, Algorithm 1 ends within epsilon on val using no
    more raw layers than the literal loop, and codes the finetuned layers again."""
    model, base = _example("digits_mlp")
    cbs = learn(model.weights, CodebookOptions(codewords=32, iterations=6))
    data = em.load_data(model, em.DataSpec(base + ".train.npz", base + ".test.npz"))
    data = em.ModelData(
        data.x_train[:64], data.y_train[:64], data.x_test, data.y_test, None, data.x_val, data.y_val
    )
    outs = {}
    for search in (False, True):
        opts = em.EMOptions(
            epsilon=0.5,
            precheck=False,
            rate_search=search,
            frozen_biases=False,
            fallback_raw=False,
            coded_tries=0,
        )
        outs[search] = em.run(model, encode.encode_model(model, cbs), data, opts, Restore())
    lit, new = outs[False], outs[True]
    raw = {k: sum(c == encode.RAW for c in o.choices) for k, o in outs.items()}
    assert all(len(e.rates) > 1 for e in encode.encode_model(model, cbs))
    assert all(c in (0, encode.RAW) for c in lit.choices)  # literal: coarsest or raw
    assert lit.passed and new.passed and not lit.recoded
    assert new.recoded and raw[True] < raw[False]  # a finetuned layer coded again
    assert all(new.choices[i] != encode.RAW for i in new.recoded)
    assert new.final >= new.original - 0.5  # judged on val
    # the held-out test accuracy is reported, measured on the rebuilt model
    x = em.model_inputs(model, data.x_test)
    blob = encode.rebuilt_model(model, new.encodings, new.choices, True, new.patches)
    assert new.test_final == pytest.approx(em.accuracy(model, blob, x, data.y_test))
    assert new.test_original == pytest.approx(em.accuracy(model, model.data, x, data.y_test))


def test_notes_carry_test_accuracies_and_read_version_1():
    from yonoc.backend import notes

    m = notes.ModelNote(
        checked=True,
        accuracy_original=98.0,
        accuracy=97.5,
        test_accuracy_original=99.1,
        test_accuracy=98.25,
    )
    back = notes.decode(notes.encode([m]), 1)[0]
    assert (back.test_accuracy_original, back.test_accuracy) == (99.1, 98.25)
    v1 = notes.HEADER.pack(notes.MAGIC, 1, 0, 1) + notes.MODEL_V1.pack(
        0,
        notes.HAS_ACCURACY,
        0,
        notes.NONE16,
        0xFFFF,
        0,
        0,
        9800,
        9750,
        notes.NONE16,
        0xFFFF,
        notes.NONE16,
        notes.NONE16,
    )
    old = notes.decode(v1, 1)[0]  # images built before the test figures still read
    assert old.accuracy == 97.5 and old.test_accuracy is None
