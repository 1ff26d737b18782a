"""The flash model rewrite (backend/flash.py, docs/image-format.md "Flash tasks"): same graph
apart from the decode ops, each decode op before its weight's first consumer, its record and
indices exactly the rebuild-mode fill record's; and in TFLM's Python interpreter the equivalent
model (decode op -> RESHAPE of the decoded bytes) is bit-exact with the rebuild-mode model."""

from __future__ import annotations

import os

import numpy as np
import pytest

from yonoc.backend import flash
from yonoc.backend import image_format as fmt
from yonoc.backend.execute import Execution

from conftest import EXAMPLES

BOOKKEEPING = 192  # bytes of TFLM arena bookkeeping allowed per added decode op (64-bit host)
S = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")


@pytest.fixture(scope="module")
def rebuild_image(examples_built):
    """The four fast examples in rebuild mode: the session image (default options)."""
    img = fmt.read_image(examples_built.image.read_bytes())
    assert not any(t.flash for t in img.tasks)
    return img


def _tasks(image):
    for i, t in enumerate(image.tasks):
        yield t, fmt.rebuild(image, i)


def _model(data: bytes):
    return S.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _op_name(m, op) -> str:
    c = m.operatorCodes[op.opcodeIndex]
    code = c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode
    return (
        code if c.builtinCode == flash.CUSTOM else str(max(c.builtinCode, c.deprecatedBuiltinCode))
    )


def _tensor_key(t):
    q = t.quantization
    quant = (
        None
        if q is None
        else (
            None if q.scale is None else list(q.scale),
            None if q.zeroPoint is None else list(q.zeroPoint),
            q.quantizedDimension,
        )
    )
    return (list(t.shape), t.type, quant)


def test_flash_model_is_the_graph_plus_decode_ops(rebuild_image):
    for t, rebuilt in _tasks(rebuild_image):
        pq = [f for f in t.fills if f.kind in (fmt.FillKind.PQ, fmt.FillKind.PQ_RESIDUAL)]
        assert pq, t.name
        fm = flash.flash_model(rebuilt, t.fills)
        a, b = _model(rebuilt), _model(fm)
        sa, sb = a.subgraphs[0], b.subgraphs[0]
        decode = [op for op in sb.operators if _op_name(b, op) == "YONO_DECODE"]
        assert len(decode) == len(pq)
        rest = [op for op in sb.operators if _op_name(b, op) != "YONO_DECODE"]
        assert [(_op_name(a, o), list(o.inputs), list(o.outputs)) for o in sa.operators] == [
            (_op_name(b, o), list(o.inputs), list(o.outputs)) for o in rest
        ]
        n = len(sa.tensors)
        assert len(sb.tensors) == n + 2 * len(pq)
        assert [_tensor_key(x) for x in sa.tensors] == [_tensor_key(x) for x in sb.tensors[:n]]
        code = next(c for c in b.operatorCodes if c.builtinCode == flash.CUSTOM)
        assert code.version == 1
        by_offset = {f.dst_offset: f for f in pq}
        spans = {b_: off for off, (b_, _) in flash._buffer_spans(rebuilt).items()}
        for k, op in enumerate(sb.operators):
            if _op_name(b, op) != "YONO_DECODE":
                continue
            (w,) = op.outputs
            idx, rec = (sb.tensors[i] for i in op.inputs)
            assert op.customOptions is None or len(op.customOptions) == 0
            assert w < n and sb.tensors[w].buffer == 0  # W's own tensor, now without data
            # placed immediately before W's first consumer, which is the next non-decode op
            consumers = [j for j, o in enumerate(sb.operators) if w in list(o.inputs)]
            assert consumers and consumers[0] > k
            assert all(_op_name(b, o) == "YONO_DECODE" for o in sb.operators[k + 1 : consumers[0]])
            f = by_offset[spans[sa.tensors[w].buffer]]
            assert idx.type == flash.UINT8 and list(idx.shape) == [len(f.payload)]
            assert bytes(b.buffers[idx.buffer].data) == f.payload
            assert rec.type == flash.UINT8 and list(rec.shape) == [24]
            assert bytes(b.buffers[rec.buffer].data) == flash.record_bytes(f)
            assert fmt.FILL_RECORD.unpack(flash.record_bytes(f))[:2] == (0, f.length)
        # the coded weight bytes are not in the flash model; its buffers are 16-aligned
        for f in pq:
            assert rebuilt[f.dst_offset : f.dst_offset + f.length] not in fm
        assert all(off % 16 == 0 for off in flash._buffer_spans(fm))


def test_decode_ops_decode_to_the_rebuild_bytes(rebuild_image):
    for t, rebuilt in _tasks(rebuild_image):
        fm = flash.flash_model(rebuilt, t.fills)
        got = sorted(
            fmt.decode_pq(op.fill, rebuild_image.codebooks).tobytes() for op in flash.decode_ops(fm)
        )
        want = sorted(
            rebuilt[f.dst_offset : f.dst_offset + f.length]
            for f in t.fills
            if f.kind in (fmt.FillKind.PQ, fmt.FillKind.PQ_RESIDUAL)
        )
        assert got == want


def test_flash_model_is_deterministic(rebuild_image):
    t, rebuilt = next(_tasks(rebuild_image))
    assert flash.flash_model(rebuilt, t.fills) == flash.flash_model(bytes(rebuilt), list(t.fills))


def test_equivalent_model_is_bit_exact_and_its_arena_holds_the_decoded_weights(rebuild_image):
    from yonoc import arena, interpreter
    from yonoc.frontend import read_model_bytes

    for t, rebuilt in _tasks(rebuild_image):
        eq = flash.equivalent_model(rebuilt, t.fills)
        xs = interpreter.generated_inputs(read_model_bytes(rebuilt, t.name), 3)
        a, b = interpreter.run(rebuilt, xs), interpreter.run(eq, xs)
        for ya, yb in zip(a, b):
            for u, v in zip(ya, yb):
                assert u.dtype == v.dtype and np.array_equal(u, v), t.name
        reb, fl = arena.smallest_arena(rebuilt), arena.smallest_arena(eq)
        biggest = flash.largest_decoded(t.fills)
        ops = len(flash.decode_ops(flash.flash_model(rebuilt, t.fills)))
        # the decoded weights live in the arena: at least the largest one, and (the issue's
        # bar) no more than it on top of the rebuild-mode arena, plus TFLM's bookkeeping of the
        # added operators (a node and two tensors each: about 150 B on this 64-bit host;
        # kws_dscnn's 12 decode ops take it 1,776 B over the bare bar, docs/benchmarks.md)
        assert reb > 0 and fl >= biggest
        assert reb < fl <= reb + biggest + BOOKKEEPING * ops, (t.name, reb, fl, biggest)


def test_an_operator_that_needs_constant_weights_blocks_flash_mode(rebuild_image):
    t, rebuilt = next(_tasks(rebuild_image))
    assert flash.blockers(rebuilt, t.fills) == []
    m = _model(rebuilt)
    for c in m.operatorCodes:  # pretend the FC layers were SVDF (CMSIS-NN: constant weights)
        if max(c.builtinCode, c.deprecatedBuiltinCode) == 9:  # FULLY_CONNECTED
            c.builtinCode = c.deprecatedBuiltinCode = 27  # SVDF
    import flatbuffers

    bld = flatbuffers.Builder(0)
    bld.Finish(m.Pack(bld), file_identifier=b"TFL3")
    svdf = bytes(bld.Output())
    # same buffers, other offsets: re-point the fills at the new buffer offsets
    old = {b_: off for off, (b_, _) in flash._buffer_spans(rebuilt).items()}
    new = {b_: off for off, (b_, _) in flash._buffer_spans(svdf).items()}
    to_new = {old[b_]: new[b_] for b_ in old if b_ in new}
    fills = [
        fmt.Fill(**{**f.__dict__, "dst_offset": to_new[f.dst_offset]})
        for f in t.fills
        if f.kind in (fmt.FillKind.PQ, fmt.FillKind.PQ_RESIDUAL)
    ]
    why = flash.blockers(svdf, fills)
    assert why and all("SVDF" in w for w in why)


@pytest.fixture(scope="module")
def kws_image():
    """kws_dscnn alone, rebuild mode, --no-check: its 12 decode ops take it over the bare
    per-task bar (docs/benchmarks.md), so some of its weights must stay raw in flash mode."""
    from yonoc.compiler import build
    from yonoc.options import BuildOptions

    path = os.path.join(EXAMPLES, "kws_dscnn.tflite")
    return fmt.read_image(
        build([path], BuildOptions(check=False, jobs=1), Execution("rebuild")).image
    )


@pytest.mark.parametrize("which", ["fast_examples", "kws_dscnn"])
def test_each_task_meets_the_per_task_sram_bar_in_flash_mode(which, rebuild_image, kws_image):
    """Issue 14's bar, measured: flash arena <= rebuild arena + largest decoded weight, for
    every task; where the plain rewrite is over it, the fewest smallest coded weights stay raw
    (the arena one fewer would need is measured over the bar) and the model stays bit-exact."""
    from yonoc import interpreter
    from yonoc.backend import execute
    from yonoc.frontend import read_model_bytes

    image = rebuild_image if which == "fast_examples" else kws_image
    tasks, costs = execute.measure_tasks(image)
    img = fmt.read_image(execute.convert(image, Execution("flash"), (tasks, costs)))
    kept_any = False
    for i, (t, c, ft) in enumerate(zip(tasks, costs, img.tasks)):
        bound = t.arena_size + c.largest_decoded
        assert ft.flash and 0 < ft.arena_size <= bound, (t.name, ft.arena_size, bound)
        kept = c.flash_raw_kept
        fm = fmt.rebuild(img, i)
        assert flash.raw_kept(fm)[0] == kept
        coded = flash.coded_buffers(t.model, t.fills)
        assert len(flash.decode_ops(fm)) == len(coded) - kept
        eq = flash.equivalent_model(t.model, t.fills, kept)
        assert interpreter.measure_arena(eq) == ft.arena_size  # the stored figure is measured
        if kept:
            kept_any = True
            fewer = flash.equivalent_model(t.model, t.fills, kept - 1)
            over = t.arena_size + flash.largest_decoded(t.fills)  # the bar one fewer raw
            assert interpreter.measure_arena(fewer) > over, t.name  # the fewest
            raw = flash.raw_first(coded)
            assert max(r.fill.length for r in raw[:kept]) <= min(
                (r.fill.length for r in raw[kept:]), default=np.inf
            )
            # raw weights hold their rebuild-mode bytes: outputs bit-exact with rebuild mode
            xs = interpreter.generated_inputs(read_model_bytes(t.model, t.name), 2)
            for ya, yb in zip(interpreter.run(t.model, xs), interpreter.run(eq, xs)):
                assert all(np.array_equal(u, v) for u, v in zip(ya, yb)), t.name
        else:
            assert flash.raw_kept(fm) == (0, 0)
    assert kept_any or which != "kws_dscnn"


def test_raw_kept_search_takes_the_fewest_and_blocks_when_none_meets_the_bar(
    rebuild_image, monkeypatch
):
    """The search itself, on stand-in arena figures (so every outcome is reachable): a 1,000 B
    base, 300 B per decode op, plus the largest decoded weight while any is decoded."""
    from yonoc import interpreter

    t, rebuilt = next(
        (t, m) for t, m in _tasks(rebuild_image) if len(flash.coded_buffers(m, t.fills)) >= 3
    )
    n = len(flash.coded_buffers(rebuilt, t.fills))
    largest = flash.largest_decoded(t.fills)

    def reshapes(model):
        m = _model(model)
        return sum(
            1
            for sg in m.subgraphs
            for op in sg.operators
            if m.operatorCodes[op.opcodeIndex].builtinCode == flash.RESHAPE
        )

    base = reshapes(rebuilt)

    def fake(model, name=""):
        ops = reshapes(model) - base
        return 1000 + 300 * ops + (largest if ops else 0)

    monkeypatch.setattr(interpreter, "measure_arena", fake)
    cost = flash.measure(rebuilt, t.fills, t.name, 1300)  # the bar allows one decode op
    assert cost.blockers == [] and cost.raw_kept == n - 1
    assert (cost.arena, cost.largest) == (1300 + largest, largest)
    cost = flash.measure(rebuilt, t.fills, t.name, 1000 + 300 * n)  # already within the bar
    assert (cost.raw_kept, cost.arena) == (0, 1000 + 300 * n + largest)
    cost = flash.measure(rebuilt, t.fills, t.name, 1000)  # only with every weight raw
    assert (cost.raw_kept, cost.arena, cost.largest) == (n, 1000, 0)
    cost = flash.measure(rebuilt, t.fills, t.name, 999)  # not even then: blocked
    assert cost.blockers and "every coded weight raw" in cost.blockers[0] and cost.arena == 0
