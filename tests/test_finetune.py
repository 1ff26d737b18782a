"""Algorithm 1 (passes/em.py), the finetune hook interface and the torch lift."""

from __future__ import annotations

import copy
import dataclasses
import os
import sys

import numpy as np
import pytest

from yonoc import interpreter
from yonoc.errors import MissingDependencyError, ModelError, YonocError
from yonoc.finetune import CodedLayer, FinetuneData, FinetuneResult, call_hook, load_hook
from yonoc.frontend import read_model
from yonoc.passes import em, encode
from yonoc.pq.codebooks import CodebookOptions, learn

from conftest import EXAMPLES, SHARED

# the lift tracks TFLM's int8 arithmetic up to fixed-point requantisation rounding:
# dequantised outputs within this many output LSBs (max / mean), same top-1 class
LIFT_MAX_LSB = 2.0 + 1e-4  # + float32 rounding of the dequantised outputs
LIFT_MEAN_LSB = 0.5


def _example(name):
    base = os.path.join(EXAMPLES, name)
    if not all(os.path.isfile(base + s) for s in (".tflite", ".train.npz", ".test.npz")):
        pytest.skip(f"example {name} with data not present")
    return (read_model(base + ".tflite"), base + ".train.npz", base + ".test.npz")


def _coarse_encodings(model, codewords=64):
    cbs = learn(model.weights, CodebookOptions(codewords=codewords, iterations=8))
    coarse = [cbs.rates(g)[0] for g in sorted({b.group for b in cbs.books})]
    from yonoc.pq.codebooks import CodebookSet

    cbs = CodebookSet(coarse)
    return cbs, encode.encode_model(model, cbs)


class OracleHook:
    """A non-torch hook: 'finetunes' by restoring the original weights of the layers in S."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, trainable, weights, data):
        self.calls.append((list(trainable), [w.shape for w in weights], data))
        out = {}
        for i in trainable:
            t = model.weights[i]
            out[i] = (t.values.astype(np.float64) * encode.channel_scales(t)).reshape(t.shape)
        return out


def test_hook_interface_with_a_non_torch_hook_and_frozen_codebooks():
    model, train, test = _example("digits_resnet")
    cbs, encs = _coarse_encodings(model)
    frozen = copy.deepcopy([[s.copy() for s in b.subs] for b in cbs.books])
    data = em.load_data(model, em.DataSpec(train, test))
    data = em.ModelData(data.x_train[:64], data.y_train[:64], data.x_test[:150], data.y_test[:150])
    hook = OracleHook()
    out = em.run(
        model, encs, data, em.EMOptions(epsilon=100.0, precheck=False, coded_tries=0), hook
    )
    # first call: S = first and last layer by operator order, every layer's weights given
    first_s, shapes, fd = hook.calls[0]
    assert first_s == em.first_last(em.layer_map(model))
    assert shapes == [w.shape for w in model.weights]
    assert isinstance(fd, FinetuneData) and fd.x.shape[0] == 64 and fd.y is not None
    assert out.passed and not out.fell_back
    # layers in S are stored raw with the hook's (re-quantised) values
    for i in out.trainable:
        t = model.weights[i]
        assert out.choices[i] == encode.RAW
        assert out.patches[t.offset] == t.values.tobytes()
    # codewords never change
    assert all(
        np.array_equal(a, b)
        for book, subs in zip(cbs.books, frozen)
        for a, b in zip(book.subs, subs)
    )


def test_call_hook_rejects_bad_results():
    model, _, _ = _example("digits_mlp")
    ws = [np.zeros(t.shape) for t in model.weights]
    fd = FinetuneData(np.zeros((1, 64), np.float32), None)
    with pytest.raises(YonocError, match="frozen layer"):
        call_hook(lambda m, s, w, d: {1: ws[1]}, model, [0], ws, fd)
    with pytest.raises(YonocError, match="weights for layer"):
        call_hook(lambda m, s, w, d: {0: np.zeros(3)}, model, [0], ws, fd)
    with pytest.raises(YonocError, match="non-finite"):
        call_hook(lambda m, s, w, d: FinetuneResult({0: ws[0] * np.nan}), model, [0], ws, fd)
    with pytest.raises(YonocError, match="expected FinetuneResult"):
        call_hook(lambda m, s, w, d: 3, model, [0], ws, fd)


def test_call_hook_biases_of_frozen_layers_only_when_asked():
    model, _, _ = _example("digits_mlp")
    ws = [np.zeros(t.shape) for t in model.weights]
    bias = np.zeros(model.weights[1].shape[0])
    hook = lambda m, s, w, d: FinetuneResult({}, {1: bias})  # noqa: E731
    with pytest.raises(YonocError, match="biases for frozen layer 1"):
        call_hook(
            hook,
            model,
            [0],
            ws,
            FinetuneData(np.zeros((1, 64), np.float32), None, frozen_biases=False),
        )
    res = call_hook(
        hook, model, [0], ws, FinetuneData(np.zeros((1, 64), np.float32), None, frozen_biases=True)
    )
    assert np.array_equal(res.biases[1], bias)


def test_biases_of_coded_layers_are_patched_next_to_their_codes():
    """frozen_biases: a PQ-coded layer keeps its codes and gets the hook's bias."""
    model, train, test = _example("digits_resnet")
    cbs, encs = _coarse_encodings(model)
    data = em.load_data(model, em.DataSpec(train, test))
    data = em.ModelData(data.x_train[:32], data.y_train[:32], data.x_test[:60], data.y_test[:60])
    layers = em.layer_map(model)

    class BiasShift:  # every layer's bias + 3 units of its int32 bias scale
        def __call__(self, model, trainable, weights, data):
            assert data.frozen_biases
            out = FinetuneResult({i: weights[i] for i in trainable})
            for i, li in enumerate(layers):
                if li.bias_offset is not None:
                    b = np.frombuffer(model.data, "<i4", len(li.bias_scale), li.bias_offset)
                    out.biases[i] = (b + 3.0) * li.bias_scale
            return out

    out = em.run(model, encs, data, em.EMOptions(epsilon=100.0, precheck=False), BiasShift())
    coded = [i for i, c in enumerate(out.choices) if c != encode.RAW]
    assert coded and all(layers[i].bias_offset is not None for i in coded)
    for i in coded:
        li = layers[i]
        b = np.frombuffer(model.data, "<i4", len(li.bias_scale), li.bias_offset)
        assert np.array_equal(np.frombuffer(out.patches[li.bias_offset], "<i4"), b + 3)
    # the model with those patches assembles (no patch overlaps a PQ-coded tensor)
    encode.rebuilt_model(model, encs, out.choices, True, out.patches)


def test_e_step_reassigns_codes_of_the_shadow_weights_trained_through_the_codebook():
    """reassign="finetuned": the E-step hands the layers outside S to the hook as coded
    layers (read-only codeword copies), then encodes the returned shadow weights."""
    model, train, test = _example("digits_resnet")
    cbs, encs = _coarse_encodings(model)
    frozen = [[sub.copy() for sub in b.subs] for b in cbs.books]
    data = em.load_data(model, em.DataSpec(train, test))
    data = em.ModelData(data.x_train[:32], data.y_train[:32], data.x_test[:60], data.y_test[:60])
    calls = []

    class Negate:  # the E-step's shadow weights: the negated originals
        def __call__(self, model, trainable, weights, data):
            calls.append((sorted(trainable), sorted(data.coded)))
            for c in data.coded.values():
                assert isinstance(c, CodedLayer) and c.subs
                for sub in c.subs:
                    sub[:] = 0  # a copy: must not reach the codebooks
            return {i: -weights[i] if i in data.coded else weights[i] for i in trainable}

    out = em.run(
        model,
        encs,
        data,
        em.EMOptions(
            epsilon=-100.0,
            precheck=False,
            max_iterations=1,
            reassign="finetuned",
            heuristic=False,
            fallback_raw=False,
            coded_tries=0,
        ),
        Negate(),
    )
    s = out.trainable
    rest = [i for i in range(len(encs)) if i not in s]
    assert calls[0] == (s, []) and calls[1] == (rest, rest) and calls[2] == (s, [])
    for i in rest:  # the new codes come back; the encodings given are left as they were
        t = model.weights[i]
        book = encs[i].rates[0].book
        negated = dataclasses.replace(t, values=-t.values.astype(np.float32))
        assert np.array_equal(
            out.encodings[i].rates[0].indices, book.encode(negated.vector_order())
        )
        assert np.array_equal(encs[i].rates[0].indices, book.encode(t.vector_order()))
    assert all(
        np.array_equal(a, b)
        for book, subs in zip(cbs.books, frozen)
        for a, b in zip(book.subs, subs)
    )


def test_load_hook_by_module_callable_and_errors(tmp_path, monkeypatch):
    (tmp_path / "myhooks.py").write_text(
        "class Hook:\n    def __call__(self, model, trainable, weights, data):\n        return {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert callable(load_hook("myhooks:Hook"))
    with pytest.raises(YonocError, match="cannot import"):
        load_hook("no_such_module_xyz:hook")
    with pytest.raises(YonocError, match="has no"):
        load_hook("myhooks:Nope")
    with pytest.raises(YonocError, match="no such hook"):
        load_hook("no-such-entry-point")


def test_missing_torch_is_a_clear_error(monkeypatch):
    from yonoc.finetune.lift import require_torch

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'yonoc\[torch\]'"):
        require_torch()


def test_eq3_picks_largest_error_per_parameter():
    model, train, test = _example("digits_resnet")
    _, encs = _coarse_encodings(model)
    errs = [e.error_at(0) / e.tensor.size for e in encs]
    data = em.load_data(model, em.DataSpec(train, test))
    data = em.ModelData(data.x_train[:32], data.y_train[:32], data.x_test[:60], data.y_test[:60])

    class Identity:  # keeps the reconstruction: nothing recovers, S grows by eq. 3
        def __call__(self, model, trainable, weights, data):
            return {i: weights[i] for i in trainable}

    out = em.run(
        model,
        encs,
        data,
        em.EMOptions(epsilon=-100.0, precheck=False, max_iterations=1, coded_tries=0),
        Identity(),
    )
    s0 = set(out.steps[0].trainable)
    rest = [i for i in range(len(encs)) if i not in s0]
    assert set(out.trainable) - s0 == {max(rest, key=lambda i: errs[i])}


# ---- torch -------------------------------------------------------------------------------


def _example_models():
    import glob

    return sorted(glob.glob(os.path.join(EXAMPLES, "*.tflite")))


@pytest.mark.parametrize("path", _example_models(), ids=os.path.basename)
def test_lift_matches_tflm(path):
    pytest.importorskip("torch")
    from yonoc.finetune.lift import lift_matches

    model = read_model(path)
    sample = path[: -len(".tflite")] + ".sample.npy"
    xs = (
        list(np.load(sample).reshape((-1,) + tuple(model.inputs[0].shape)))
        if os.path.isfile(sample)
        else interpreter.generated_inputs(model, 8)
    )
    lifted = lift_matches(model, xs)[0].reshape(len(xs), -1)
    info = model.outputs[0]
    ref = np.stack(
        [interpreter.dequantize(o[0], info).reshape(-1) for o in interpreter.run(model.data, xs)]
    )
    lsb = np.abs(lifted - ref) / info.scale
    assert lsb.max() <= LIFT_MAX_LSB and lsb.mean() <= LIFT_MEAN_LSB, (lsb.max(), lsb.mean())
    if ref.shape[1] > 1:
        assert np.array_equal(lifted.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("kernel_major", [False, True])
def test_lift_coded_layers_compute_with_the_encoders_codewords(kernel_major):
    """The E-step's straight-through forward uses exactly what the E-step then encodes, at
    every rate, the residual (two-stage, saturating) one included."""
    torch = pytest.importorskip("torch")
    from yonoc.compiler import choose_layouts
    from yonoc.finetune.coded import codeword_stages, nearest_codewords

    model, _, _ = _example("digits_resnet")
    model = choose_layouts([model], kernel_major)[0]
    cbs = learn(model.weights, CodebookOptions(codewords=64, iterations=8))
    encs = encode.encode_model(model, cbs)
    rng = np.random.default_rng(0)
    residual = 0
    for e in encs:
        t = e.tensor
        w = t.values.astype(np.float64) + rng.normal(0, 2, t.size)
        perm = t.vector_permutation()
        for r in e.rates:
            book = r.book
            residual += book.base is not None
            c = em.coded_layer(book, perm)
            q = nearest_codewords(
                torch,
                torch.as_tensor(w.reshape(t.shape)),
                codeword_stages(torch, c, torch.float64),
                None if perm is None else torch.as_tensor(perm),
            )
            shifted = dataclasses.replace(t, values=w.astype(np.float32))
            want = t.from_vector_order(book.decode(book.encode(shifted.vector_order()), t.size))
            assert np.array_equal(q.numpy().reshape(-1), want.astype(np.float64)), t.name
    assert residual  # the residual rate was exercised


def test_lift_names_an_unsupported_operator():
    pytest.importorskip("torch")
    path = os.path.join(SHARED, "tflite-micro", "trained_lstm_int8.tflite")
    if not os.path.isfile(path):
        pytest.skip("shared models not present")
    from yonoc.finetune.lift import build_lift

    with pytest.raises(ModelError, match="UNIDIRECTIONAL_SEQUENCE_LSTM"):
        build_lift(read_model(path))


def test_em_beats_pq_m_on_a_small_model():
    pytest.importorskip("torch")
    from yonoc.finetune.torch_hook import TorchFinetune

    model, train, test = _example("digits_resnet")
    _, encs = _coarse_encodings(model)
    data = em.load_data(model, em.DataSpec(train, test))
    data = em.ModelData(data.x_train[:600], data.y_train[:600], data.x_test, data.y_test)
    x_test = em.model_inputs(model, data.x_test)
    acc_pq = em.accuracy(
        model, encode.rebuilt_model(model, encs, [0] * len(encs), True), x_test, data.y_test
    )
    out = em.run(
        model,
        encs,
        data,
        em.EMOptions(epsilon=0.5, epochs=3, max_iterations=1, fallback_raw=False),
        TorchFinetune(threads=1),
    )  # (tiny layers: more threads only contend)
    assert not out.fell_back
    assert out.final >= acc_pq + 5.0, (acc_pq, out.final)


def test_torch_hook_early_stopping_keeps_the_best_epoch(caplog):
    """patience: training stops once the validation loss stops improving, and the weights of
    the best epoch come back (not those of the last epoch run)."""
    pytest.importorskip("torch")
    from yonoc.finetune.torch_hook import TorchFinetune

    model, train, test = _example("digits_mlp")
    data = em.load_data(model, em.DataSpec(train, test))
    x = em.float_inputs(model, data.x_train[:128])
    xv = em.float_inputs(model, data.x_val[:100])
    ws = [(t.values * encode.channel_scales(t)).reshape(t.shape) for t in model.weights]
    hook = TorchFinetune(threads=1)
    # a learning rate far too large: the validation loss rises after the first epochs
    knobs = dict(epochs=12, lr=400.0, train_biases=False, frozen_biases=False)
    full = hook(model, [0], ws, FinetuneData(x, data.y_train[:128], **knobs))
    with caplog.at_level("INFO", logger="yonoc"):
        early = hook(
            model,
            [0],
            ws,
            FinetuneData(
                x, data.y_train[:128], patience=2, x_val=xv, y_val=data.y_val[:100], **knobs
            ),
        )
    stops = [r.getMessage() for r in caplog.records if "early stop" in r.getMessage()]
    assert len(stops) == 1
    epochs_run = sum("finetune S=[0] epoch" in r.getMessage() for r in caplog.records)
    assert epochs_run < 12
    assert not np.array_equal(early.weights[0], full.weights[0])


def test_coded_stage_trains_every_layer_through_its_codebook():
    """coded_tries: before lines 1-8 every coded layer is handed to the hook as a coded layer
    (S empty) and its codes become the nearest codewords of the returned shadow weights; met
    there, no layer is raw."""
    model, train, test = _example("digits_resnet")
    cbs, encs = _coarse_encodings(model)
    data = em.load_data(model, em.DataSpec(train, test))
    data = em.ModelData(data.x_train[:32], data.y_train[:32], data.x_test[:60], data.y_test[:60])
    calls = []

    class Negate:  # shadow weights: the negated originals (codes must follow them)
        def __call__(self, model, trainable, weights, data):
            calls.append((sorted(trainable), sorted(data.coded)))
            return {i: -weights[i] for i in trainable}

    opts = em.EMOptions(epsilon=100.0, precheck=False, coded_tries=2)
    out = em.run(model, encs, data, opts, Negate())
    every = list(range(len(encs)))
    assert calls == [(every, every)]  # one try sufficed, S empty
    assert out.passed and out.coded_tries == 1 and out.trainable == []
    assert encode.RAW not in out.choices and not out.patches.keys() - {
        li.bias_offset for li in em.layer_map(model)
    }
    for i in every:
        t = model.weights[i]
        negated = dataclasses.replace(t, values=-t.values.astype(np.float32))
        book = encs[i].rates[0].book
        assert np.array_equal(
            out.encodings[i].rates[0].indices, book.encode(negated.vector_order())
        )


def test_coded_stage_misses_then_steps_a_layer_finer_then_the_loop():
    """Missed: the next try has the eq. 3 worst layer one rate finer; after coded_tries the
    literal loop (S = first/last) takes over."""
    model, base = _example("digits_mlp")[0], os.path.join(EXAMPLES, "digits_mlp")
    cbs = learn(model.weights, CodebookOptions(codewords=32, iterations=6))
    data = em.load_data(model, em.DataSpec(base + ".train.npz", base + ".test.npz"))
    data = em.ModelData(data.x_train[:32], data.y_train[:32], data.x_test[:60], data.y_test[:60])
    calls = []

    class Zero:  # shadow weights all zero: accuracy collapses, the target is missed
        def __call__(self, model, trainable, weights, data):
            calls.append(sorted(data.coded))
            return {i: 0 * weights[i] for i in trainable}

    opts = em.EMOptions(
        epsilon=0.0, precheck=False, coded_tries=2, max_iterations=0, fallback_raw=False
    )
    out = em.run(model, encode.encode_model(model, cbs), data, opts, Zero())
    every = list(range(len(model.weights)))
    assert calls[:2] == [every, every] and calls[2] == []  # then M-step of S = first/last
    assert not out.passed and out.coded_tries == 0
    assert [s.trainable for s in out.steps[:2]] == [[], []]
    assert out.steps[2].trainable == em.first_last(em.layer_map(model))


def test_finetune_device_option():
    """device: cpu trains (the constants move with the module); cuda without a CUDA device is
    a one-line YonocError; a bad device in a spec is rejected."""
    torch = pytest.importorskip("torch")
    from yonoc.finetune.torch_hook import TorchFinetune, resolve_device

    assert resolve_device(torch, "cpu").type == "cpu"
    assert resolve_device(torch, "auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(YonocError, match="expected cpu, cuda"):
        resolve_device(torch, "tpu")
    if not torch.cuda.is_available():
        with pytest.raises(YonocError, match="no CUDA device"):
            resolve_device(torch, "cuda")
        model, train, test = _example("digits_mlp")
        data = em.load_data(model, em.DataSpec(train, test))
        x = em.float_inputs(model, data.x_train[:16])
        ws = [(t.values * encode.channel_scales(t)).reshape(t.shape) for t in model.weights]
        with pytest.raises(YonocError, match="no CUDA device"):
            TorchFinetune(threads=1)(
                model, [0], ws, FinetuneData(x, data.y_train[:16], epochs=1, device="cuda")
            )


def test_fallback_uses_the_codes_as_encoded():
    """The data-free fallback starts from the codes as encoded, not from the E-steps' codes
    fitted to trained shadow weights (here: zeros, which would ruin every coded layer)."""
    model, base = _example("digits_mlp")[0], os.path.join(EXAMPLES, "digits_mlp")
    cbs = learn(model.weights, CodebookOptions(codewords=32, iterations=6))
    encs = encode.encode_model(model, cbs)
    data = em.load_data(model, em.DataSpec(base + ".train.npz", base + ".test.npz"))
    data = em.ModelData(data.x_train[:32], data.y_train[:32], data.x_test[:60], data.y_test[:60])

    class Zero:
        def __call__(self, model, trainable, weights, data):
            return {i: 0 * weights[i] for i in trainable}

    opts = em.EMOptions(epsilon=0.0, precheck=False, coded_tries=1, max_iterations=0)
    out = em.run(model, encs, data, opts, Zero())
    assert out.fell_back
    for a, b in zip(out.encodings, encs):
        assert all(np.array_equal(x.indices, y.indices) for x, y in zip(a.rates, b.rates))
