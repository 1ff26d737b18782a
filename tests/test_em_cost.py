"""What the EM pass spends (passes/em.py): one TFLM evaluation per distinct blob, the loop's
stall stop, and the ce+kl finetuning loss."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from yonoc import interpreter
from yonoc.frontend import read_model
from yonoc.passes import em, encode
from yonoc.passes.em_eval import EvalCache
from yonoc.pq.codebooks import CodebookOptions, learn

from conftest import EXAMPLES


@pytest.fixture(scope="module")
def mlp():
    base = os.path.join(EXAMPLES, "digits_mlp")
    if not all(os.path.isfile(base + s) for s in (".tflite", ".train.npz", ".test.npz")):
        pytest.skip("example digits_mlp with data not present")
    model = read_model(base + ".tflite")
    data = em.load_data(model, em.DataSpec(base + ".train.npz", base + ".test.npz"))
    data = em.ModelData(data.x_train[:32], data.y_train[:32], data.x_test[:60], data.y_test[:60])
    cbs = learn(model.weights, CodebookOptions(codewords=32, iterations=6))
    return model, data, cbs


def test_eval_cache_runs_tflm_once_per_blob(mlp, monkeypatch):
    model, data, cbs = mlp
    runs = []
    real_run = interpreter.run

    def counting_run(*args, **kw):
        runs.append(1)
        return real_run(*args, **kw)

    monkeypatch.setattr(interpreter, "run", counting_run)
    x = em.model_inputs(model, data.x_test)
    cache = EvalCache(lambda blob: (em.accuracy(model, blob, x, data.y_test), True))
    encs = encode.encode_model(model, cbs)
    coded = encode.rebuilt_model(model, encs, [0] * len(encs), True)
    first = cache(coded)
    assert cache(bytes(coded)) == first and len(runs) == 1 and cache.runs == 1
    other = cache(model.data)  # different bytes: measured
    assert len(runs) == 2 and cache.runs == 2
    assert other[0] == em.accuracy(model, model.data, x, data.y_test)  # the real figure


class ZeroFirst:
    """Zeroes the weights of S: with the first layer zero, every input gives the same output,
    so the score never changes whatever the loop does."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model, trainable, weights, data):
        self.calls += 1
        return {i: 0 * weights[i] for i in trainable}


def _unmeetable(**kw) -> em.EMOptions:
    """Options for one run that can never meet epsilon (0 pt, no precheck, no finer start, no
    fallback)."""
    return em.EMOptions(epsilon=0.0, precheck=False, fallback_raw=False, finer_start=False, **kw)


@pytest.mark.parametrize("stall", [0, 2])
def test_loop_stops_after_stall_steps_without_a_better_score(mlp, stall):
    model, data, cbs = mlp
    opts = _unmeetable(coded_tries=0, max_iterations=5, stall=stall)
    out = em.run(model, encode.encode_model(model, cbs), data, opts, ZeroFirst())
    assert not out.passed
    assert len({s.score for s in out.steps}) == 1  # a flat score: no step is a new best
    # the first M-step, then `stall` steps without a new best (0: every iteration)
    assert len(out.steps) == (1 + stall if stall else 1 + 5)


def test_ce_kl_loss_adds_distillation_to_the_labels(mlp, caplog):
    pytest.importorskip("torch")
    from yonoc.finetune import FinetuneData
    from yonoc.finetune.torch_hook import TorchFinetune

    model, data, _ = mlp
    x = em.float_inputs(model, data.x_train)
    ws = [(t.values * encode.channel_scales(t)).reshape(t.shape) for t in model.weights]
    ws[0] = 0.5 * ws[0]  # the student starts away from the teacher (as a coded layer does)
    out = {}
    with caplog.at_level(logging.INFO, logger="yonoc"):
        for loss in ("ce", "ce+kl"):
            fd = FinetuneData(x, data.y_train, epochs=1, loss=loss, frozen_biases=False)
            out[loss] = TorchFinetune(threads=1)(model, [0], ws, fd).weights[0]
    losses = {}
    for r in caplog.records:
        msg = r.getMessage()
        if "epoch 1/1" in msg:
            kind, value = msg.split(", ")[-1].split(" loss ")
            losses[kind] = float(value)
    # same seed and batches: the KL term to the original (> 0: the student differs from it)
    # shows in the logged loss and in the trained weights
    assert set(losses) == {"ce", "ce+kl"} and losses["ce+kl"] > losses["ce"]
    assert not np.array_equal(out["ce"], out["ce+kl"])


@pytest.mark.parametrize("restart", [True, False])
def test_a_missed_coded_stage_restarts_lines_1_8_from_the_codes_as_encoded(mlp, restart):
    """restart: after the all-coded stage misses, the first M-step sees the frozen layers
    rebuilt from the codes as encoded, not from the stage's codes (here fitted to zero weights)."""
    model, data, cbs = mlp
    encs = encode.encode_model(model, cbs)
    seen = []

    class ZeroStage:  # the stage's shadow weights all zero; the M-step returns S unchanged
        def __call__(self, model, trainable, weights, data):
            if data.coded:
                return {i: 0 * weights[i] for i in trainable}
            seen.append([np.array(w) for w in weights])
            return {i: weights[i] for i in trainable}

    opts = _unmeetable(coded_tries=1, max_iterations=0, restart=restart)
    em.run(model, encs, data, opts, ZeroStage())
    S = em.first_last(em.layer_map(model))
    frozen = [i for i in range(len(encs)) if i not in S]
    for i in frozen:
        t = encs[i].tensor
        given = t.from_vector_order(encs[i].rates[0].book.decode(encs[i].rates[0].indices, t.size))
        expected = given.astype(np.float64) * encode.channel_scales(t)
        got = seen[0][i].reshape(-1)
        assert np.allclose(got, expected) == restart


def test_training_through_the_codebooks_uses_coded_loss(mlp):
    """The all-coded stage trains with `coded_loss`, the loop's raw M-steps with `loss`."""
    model, data, cbs = mlp
    losses = []

    class Record:
        def __call__(self, model, trainable, weights, data):
            losses.append(("coded" if data.coded else "raw", data.loss))
            return {i: weights[i] for i in trainable}

    opts = em.EMOptions(
        epsilon=-100.0,
        precheck=False,
        coded_tries=1,
        max_iterations=0,
        fallback_raw=False,
        finer_start=False,
    )
    assert (opts.loss, opts.coded_loss) == ("auto", "ce+kl")  # the defaults
    em.run(model, encode.encode_model(model, cbs), data, opts, Record())
    assert losses == [("coded", "ce+kl"), ("raw", "auto")]


@pytest.mark.parametrize("coarsen", [True, False])
def test_met_after_a_rate_step_tries_the_coarser_rate_again(mlp, monkeypatch, coarsen):
    """The stage misses (a layer steps one rate finer), then meets; with `coarsen` that layer
    is tried at its coarsest rate again (one evaluation, no training) and kept there when the
    target still holds."""
    model, data, cbs = mlp
    scripted = iter([90.0, 0.0])  # the original, then the stage's first try misses
    monkeypatch.setattr(em, "accuracy", lambda *a: next(scripted, 90.0))
    trained = []

    class Shrink:  # each try's shadow weights differ (the cache would repeat a known blob)
        def __call__(self, model, trainable, weights, data):
            trained.append(sorted(data.coded))
            return {i: 0.9 * weights[i] for i in trainable}

    opts = em.EMOptions(epsilon=0.5, precheck=False, coded_tries=3, coarsen=coarsen)
    out = em.run(model, encode.encode_model(model, cbs), data, opts, Shrink())
    assert out.passed and out.coded_tries == 2 and len(trained) == 2  # no training after
    assert encode.RAW not in out.choices
    assert sorted(out.choices) == ([0] * len(out.choices) if coarsen else [0, 0, 0, 1])
    assert len(out.steps) == (3 if coarsen else 2)  # the coarsening's evaluation is a step


def _met_only_above_coarsest(model, encs, monkeypatch, allowed=0):
    """A judge (patched into em) that meets epsilon only when at most `allowed` coded tensors
    use the coarsest rate of a tensor that has a finer one: only a finer start can meet it."""
    coarsest = {id(e.rates[0].book) for e in encs if len(e.rates) > 1}
    assert coarsest, "the test needs a tensor with more than one rate"
    used = []
    real_rebuilt = em.rebuilt_model

    def spy(m, encodings, choices, *a, **kw):
        used[:] = [encodings[i].rates[c].book for i, c in enumerate(choices) if c != encode.RAW]
        return real_rebuilt(m, encodings, choices, *a, **kw)

    def accuracy(m, blob, x, y):
        if bytes(blob) == bytes(model.data):
            return 90.0
        return 0.0 if sum(id(b) in coarsest for b in used) > allowed else 90.0

    monkeypatch.setattr(em, "rebuilt_model", spy)
    monkeypatch.setattr(em, "accuracy", accuracy)
    return coarsest


class Unchanged:
    """A hook that trains nothing: S keeps the weights it is given."""

    def __call__(self, model, trainable, weights, data):
        return {i: weights[i] for i in trainable}


@pytest.mark.parametrize("finer_start", [True, False])
def test_a_miss_from_the_coarsest_rates_retries_from_the_next_finer(mlp, monkeypatch, finer_start):
    """Missed from the coarsest rates: Algorithm 1 runs again from rates[1:] and meets there
    (start_rate 1) instead of the data-free fallback; without `finer_start`, it falls back."""
    model, data, cbs = mlp
    encs = encode.encode_model(model, cbs)
    coarsest = _met_only_above_coarsest(model, encs, monkeypatch)
    opts = em.EMOptions(
        epsilon=0.5, precheck=False, coded_tries=0, max_iterations=0, finer_start=finer_start
    )
    out = em.run(model, encs, data, opts, Unchanged())
    if finer_start:
        assert out.passed and not out.fell_back and out.start_rate == 1
        assert [s.passed for s in out.steps][:2] == [False, True]  # both runs' M-steps
        chosen = [out.encodings[i].rates[c].book for i, c in enumerate(out.choices) if c >= 0]
        assert chosen and not any(id(b) in coarsest for b in chosen)
        assert out.cost["train_calls"] == 2  # both runs' costs
    else:
        assert out.fell_back and out.start_rate == 0
    assert [len(e.rates) for e in encs] == [len(e.rates) for e in encode.encode_model(model, cbs)]


def test_a_finer_start_still_tries_the_rates_it_passed_over(mlp, monkeypatch):
    """Met from the next finer start, the re-coding of S and `coarsen` still try the rate the
    start passed over, and keep it where epsilon holds: here one layer may be coarsest."""
    model, data, cbs = mlp
    encs = encode.encode_model(model, cbs)
    _met_only_above_coarsest(model, encs, monkeypatch, allowed=1)
    opts = em.EMOptions(epsilon=0.5, precheck=False, coded_tries=0, max_iterations=0)
    out = em.run(model, encs, data, opts, Unchanged())
    assert out.passed and out.start_rate == 1 and not out.fell_back
    at_coarsest = [i for i, c in enumerate(out.choices) if c == 0 and len(encs[i].rates) > 1]
    coded = [i for i, c in enumerate(out.choices) if c != encode.RAW and len(encs[i].rates) > 1]
    assert len(at_coarsest) == 1 and len(coded) > 1


@pytest.mark.parametrize("min_start_gain", [0.0, 0.9])
def test_a_start_saving_too_little_is_skipped(mlp, monkeypatch, min_start_gain):
    """A start whose coarsest rates save less than `min_start_gain` of the next start's bytes
    is not run at all: at 0.9, the 2 bpw start (50 % less than 4 bpw) and the 4 bpw one (33 %
    less than 6 bpw) are skipped and one run (one finetune call) meets from start rate 2."""
    model, data, cbs = mlp
    encs = encode.encode_model(model, cbs)
    _met_only_above_coarsest(model, encs, monkeypatch)
    opts = em.EMOptions(
        epsilon=0.5, precheck=False, coded_tries=0, max_iterations=0, min_start_gain=min_start_gain
    )
    out = em.run(model, encs, data, opts, Unchanged())
    assert out.passed and out.start_rate == (2 if min_start_gain else 1)
    assert out.cost["train_calls"] == (1 if min_start_gain else 2)


@pytest.mark.parametrize("mode", ["yono", "pq-mopt"])
def test_pq_mopt_does_not_retry_from_a_finer_start(mlp, monkeypatch, mode):
    """The paper's literal loop (mode pq-mopt) keeps its coarsest start: it misses here, where
    the yono mode meets epsilon from the next finer rate."""
    from yonoc.options import BuildOptions

    model, data, cbs = mlp
    encs = encode.encode_model(model, cbs)
    _met_only_above_coarsest(model, encs, monkeypatch)
    monkeypatch.setattr(em, "load_data", lambda m, spec: data)
    monkeypatch.setattr(em, "load_hook", lambda name: Unchanged())
    em_opts = em.EMOptions(epsilon=0.5, precheck=False, coded_tries=0, max_iterations=0)
    options = BuildOptions(mode=mode, em=em_opts)
    out = em.for_build(model, encs, None, options, True)
    assert (out.passed, out.start_rate) == ((True, 1) if mode == "yono" else (False, 0))
    assert not out.fell_back


def test_a_finer_start_drops_only_the_coarsest_rate_of_all():
    """Group A from 1 bpw, group B from 2 bpw: the retry starts A at 2 bpw and keeps B at
    2 bpw (dropping every tensor's first rate moved B to 4 bpw); then both drop 2 bpw."""
    from dataclasses import dataclass

    from yonoc.passes.em_eval import finer_start, finer_start_left, start_gain

    @dataclass
    class Tensor:
        size: int

    @dataclass
    class Book:
        bits_per_weight: float

    @dataclass
    class Rate:
        book: Book

    @dataclass
    class Enc:
        rates: list
        tensor: Tensor | None = None

    def ladder(*bpw):
        return Enc([Rate(Book(b)) for b in bpw])

    encs = [ladder(1, 2, 4, 6), ladder(2, 4, 6), ladder(), ladder(4)]
    starts = [[r.book.bits_per_weight for r in e.rates] for e in finer_start(encs)]
    assert starts == [[2, 4, 6], [2, 4, 6], [], [4]]
    starts = [[r.book.bits_per_weight for r in e.rates] for e in finer_start(finer_start(encs))]
    assert starts == [[4, 6], [4, 6], [], [4]]
    assert not finer_start_left([ladder(6), ladder(4), ladder()])
    for e, size in zip(encs, (800, 100, 50, 10)):
        e.tensor = Tensor(size)
    # 1 bpw start: 100 + 25 + 50 + 5 B; next (2 bpw on the first): 200 + 25 + 50 + 5 B
    assert start_gain(encs) == pytest.approx(100 / 280)
    assert start_gain(encs[1:]) == pytest.approx(25 / 105)  # 2 -> 4 bpw on 100 weights
    assert start_gain([encs[2], encs[3]]) == 0.0
