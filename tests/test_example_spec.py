"""examples/spec.toml, the spec the README shows, must stay runnable: every path exists and
its data fits its model (a stale spec fails here, not after minutes of finetuning)."""

from __future__ import annotations

import os

import numpy as np

from yonoc.frontend import read_model
from yonoc.spec import load_spec

from conftest import ROOT

SPEC = os.path.join(ROOT, "examples", "spec.toml")


def test_example_spec_loads_and_every_path_exists():
    spec = load_spec(SPEC)
    assert len(spec.models) == 8
    paths = list(spec.models) + [p for _, p in spec.samples]
    for _, d in spec.data:
        paths += [p for p in (d.train, d.val, d.test, d.inputs) if p]
    missing = [p for p in paths if not os.path.isfile(p)]
    assert not missing, missing
    named = {os.path.splitext(os.path.basename(p))[0] for p in spec.models}
    assert {n for n, _ in spec.data} <= named


def test_example_spec_data_matches_its_models():
    spec = load_spec(SPEC)
    models = {m.name: m for m in map(read_model, spec.models)}
    for name, d in spec.data:
        m = models[name]
        classes = int(np.prod(m.outputs[0].shape))
        for path in (p for p in (d.train, d.val, d.test) if p):
            z = np.load(path)
            assert z["x"].shape[1:] == tuple(m.inputs[0].shape[1:]), (name, path)
            assert 0 <= z["y"].min() and z["y"].max() < classes, (name, path)
