"""The flash model of a flash task (issue 14; docs/image-format.md, "Flash tasks").

A flash task runs in place from the image: each PQ-coded weight W is produced at run time by a
YONO_DECODE custom operator, inserted just before W's first consumer, from two constant uint8
tensors (the fill record's index array and the 24-byte record itself). W's tensor keeps its
index, name, shape and quantisation but loses its data (buffer 0), so every consumer reads the
decoded copy and the memory planner gives it a lifetime from the decode op to its last consumer.

The rewrite starts from the task's rebuild-mode model (the original graph with the build's bias
corrections and erased names) and its PQ fill records, so the decoded bytes are exactly the
rebuild-mode bytes. `equivalent_model` is the same graph with each decode op a RESHAPE of a
constant holding the decoded bytes: TFLM's Python interpreter can run and size it (it cannot
run YONO_DECODE), which gives a flash task's outputs and arena.

Flatbuffers are written with the tflite-micro wheel's object API (schema_py_generated) and one
fixed builder, so the output is deterministic; buffer data is 16-byte aligned (TFLM reads
buffers in place; the schema's force_align, which the object API does not apply by itself).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

import flatbuffers
import numpy as np

from ..errors import YonocError
from . import image_format as fmt
from .format_spec import DECODE_CUSTOM_CODE, FillKind

CUSTOM = 32  # BuiltinOperator.CUSTOM
RESHAPE = 22  # BuiltinOperator.RESHAPE
UINT8, INT8, INT32 = 3, 9, 2  # TensorType
# the operators whose kernels read a filter/weights tensor only in Eval (reference TFLM and
# CMSIS-NN; CMSIS-NN FULLY_CONNECTED computes kernel sums in Eval for a non-constant filter)
DECODABLE_CONSUMERS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
BUFFER_ALIGN = 16


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

    return s


def _builtin_names() -> dict:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


@dataclass(frozen=True)
class Coded:
    """One coded weight buffer of the model: its buffer index and its fill record."""

    buffer: int
    fill: fmt.Fill


def record_bytes(f: fmt.Fill) -> bytes:
    """The 24-byte record tensor of a coded weight: its fill record at dst/src offset 0."""
    res = f.kind == FillKind.PQ_RESIDUAL
    return fmt.FILL_RECORD.pack(
        0,
        f.length,
        int(f.kind),
        f.layout,
        f.codebook_count,
        f.residual_count if res else 0,
        f.codebook_first,
        f.kernel_positions,
        0,
        f.inner_channels,
        f.residual_first if res else 0,
    )


def _buffer_spans(model: bytes) -> dict:
    """{data offset in the file: (buffer index, length)} of every buffer holding data."""
    import tflite

    from ..frontend.flatbuffer import buffer_span

    m = tflite.Model.GetRootAsModel(model, 0)
    spans = {}
    for b in range(m.BuffersLength()):
        if m.Buffers(b).Offset() > 1:
            raise YonocError("a model with buffers outside the flatbuffer cannot run in place")
        start, length = buffer_span(m, b, len(model), "<model>")
        if length:
            spans[start] = (b, length)
    return spans


def coded_buffers(model: bytes, fills: list) -> list:
    """The PQ/PQ_RESIDUAL fill records of a rebuild-mode model, matched to their buffers."""
    spans = _buffer_spans(model)
    out = []
    for f in fills:
        if f.kind not in (FillKind.PQ, FillKind.PQ_RESIDUAL):
            continue
        b, length = spans.get(f.dst_offset, (None, 0))
        if b is None or length != f.length:
            raise YonocError(f"internal error: PQ record at {f.dst_offset} is not a whole buffer")
        out.append(Coded(b, f))
    return out


def blockers(model: bytes, fills: list) -> list:
    """Why this model cannot run in flash mode ([] if it can): each coded weight consumed by an
    operator that cannot take a decoded (non-constant) weight (e.g. CMSIS-NN SVDF or LSTM,
    which need constant weights at Prepare), or at another input than the filter."""
    try:
        coded = {c.buffer for c in coded_buffers(model, fills)}
    except YonocError as e:
        return [str(e)]
    if not coded:
        return []
    m = _schema().ModelT.InitFromPackedBuf(bytearray(model), 0)
    names = _builtin_names()
    why = set()
    for sg in m.subgraphs:
        for op in sg.operators:
            code = m.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            for pos, ti in enumerate([] if op.inputs is None else op.inputs):
                if ti >= 0 and sg.tensors[ti].buffer in coded:
                    if name not in DECODABLE_CONSUMERS or pos != 1:
                        why.add(f"{name} reads a coded weight at input {pos}")
    return sorted(why)


def _aligned_pack(self, builder):
    """BufferT.Pack with the schema's force_align: 16 on the data vector."""
    s = _schema()
    data = None
    if self.data is not None:
        payload = bytes(np.asarray(self.data, np.uint8).tobytes())
        builder.StartVector(1, len(payload), BUFFER_ALIGN)
        builder.head -= len(payload)
        builder.Bytes[builder.head : builder.head + len(payload)] = payload
        data = builder.EndVector()
    s.BufferStart(builder)
    if data is not None:
        s.BufferAddData(builder, data)
    s.BufferAddOffset(builder, self.offset)
    s.BufferAddSize(builder, self.size)
    return s.BufferEnd(builder)


def _opcode(m, builtin: int, custom: str | None) -> int:
    s = _schema()
    for i, c in enumerate(m.operatorCodes):
        cc = c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode
        if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin and cc == custom:
            return i
    code = s.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode = builtin, min(builtin, 127)
    code.customCode, code.version = custom, 1
    m.operatorCodes.append(code)
    return len(m.operatorCodes) - 1


def _new_buffer(m, data: bytes) -> int:
    b = _schema().BufferT()
    b.data = np.frombuffer(data, np.uint8).copy()
    m.buffers.append(b)
    return len(m.buffers) - 1


def _new_tensor(sg, name: str, shape: list, ttype: int, buffer: int) -> int:
    t = _schema().TensorT()
    t.name, t.shape, t.type, t.buffer = name, np.array(shape, np.int32), ttype, buffer
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _empty_buffer(m) -> int:
    """Buffer 0 when it is the usual empty sentinel, else a new empty buffer."""
    b0 = m.buffers[0]
    if b0.data is None or len(b0.data) == 0:
        return 0
    m.buffers.append(_schema().BufferT())
    return len(m.buffers) - 1


def raw_first(coded: list) -> list:
    """The order in which coded weights stay raw to meet the per-task SRAM bar (`measure`):
    smallest first (fewest flash bytes per decode op saved), ties by position in the model."""
    return sorted(coded, key=lambda c: (c.fill.length, c.fill.dst_offset))


def decoded_buffers(model: bytes, fills: list, keep_raw: int = 0) -> list:
    """The coded weights a flash model decodes: all but the `keep_raw` smallest (raw_first),
    which stay constant buffers holding their rebuild-mode bytes."""
    coded = coded_buffers(model, fills)
    kept = {c.buffer for c in raw_first(coded)[:keep_raw]}
    return [c for c in coded if c.buffer not in kept]


def _rewrite(model: bytes, fills: list, producer, keep_raw: int = 0, meta=None) -> bytes:
    """The model with each coded weight produced by an operator that `producer` describes:
    producer(m, sg, coded, tensor) -> (opcode index, input tensor indices); the `keep_raw`
    smallest coded weights stay raw; `meta`: (name, bytes) metadata entry to add."""
    s = _schema()
    coded = decoded_buffers(model, fills, keep_raw)
    m = s.ModelT.InitFromPackedBuf(bytearray(model), 0)
    by_buffer = {c.buffer: c for c in coded}
    empty = _empty_buffer(m) if coded else 0
    inputs_of = {}  # (buffer, producer) inputs, shared by every tensor of one buffer
    for sg in m.subgraphs:
        first_use = {}  # tensor index -> first consumer's op index
        for oi, op in enumerate(sg.operators):
            for ti in [] if op.inputs is None else op.inputs:
                if ti >= 0 and sg.tensors[ti].buffer in by_buffer:
                    first_use.setdefault(int(ti), oi)
        inserts = {}  # op index -> new ops to put before it
        for ti in sorted(first_use):
            t = sg.tensors[ti]
            c = by_buffer[t.buffer]
            key = (id(sg), c.buffer)
            if key not in inputs_of:
                inputs_of[key] = producer(m, sg, c, t)
            opcode, ins = inputs_of[key]
            op = s.OperatorT()
            op.opcodeIndex = opcode
            op.inputs = np.array(ins, np.int32)
            op.outputs = np.array([ti], np.int32)
            inserts.setdefault(first_use[ti], []).append(op)
            t.buffer = empty
        ops = []
        for oi, op in enumerate(sg.operators):
            ops += inserts.get(oi, []) + [op]
        sg.operators = ops
    for c in coded:  # the weight bytes leave the model
        m.buffers[c.buffer] = s.BufferT()
    if meta is not None:
        entry = s.MetadataT()
        entry.name, entry.buffer = meta[0], _new_buffer(m, meta[1])
        m.metadata = (m.metadata or []) + [entry]
    _drop_erased_names(m)
    for b in m.buffers:
        b.Pack = _aligned_pack.__get__(b)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _drop_erased_names(m) -> None:
    """Names the build erased (all NUL bytes, kept in the rebuild-mode model so its layout does
    not move) become empty: a flash model is stored whole, without ZERO records."""

    def erased(n):
        return n is not None and len(n) > 0 and not n.strip(b"\0" if isinstance(n, bytes) else "\0")

    for sg in m.subgraphs:
        if erased(sg.name):
            sg.name = None
        for t in sg.tensors:
            if erased(t.name):
                t.name = None
    if erased(m.description):
        m.description = None


def flash_model(model: bytes, fills: list, keep_raw: int = 0) -> bytes:
    """The flash model (docs/image-format.md "Flash tasks") of a rebuild-mode model and its
    fill records (codebook indices as in the image's table). With `keep_raw` > 0 the smallest
    coded weights stay raw constants and a RAW_KEPT_METADATA entry records how many and the
    flash bytes that costs (the model's growth over keeping none raw, the entry included)."""
    if keep_raw <= 0:
        return _flash_model(model, fills, 0, None)
    base = len(_flash_model(model, fills, 0, None))
    grown = len(_flash_model(model, fills, keep_raw, RAW_KEPT.pack(keep_raw, 0)))
    meta = RAW_KEPT.pack(keep_raw, grown - base)  # same length: the model size does not move
    return _flash_model(model, fills, keep_raw, meta)


RAW_KEPT_METADATA = "yono_raw_kept"  # TFLM reads only its own metadata names, ignores this
RAW_KEPT = struct.Struct("<Ii")  # coded weights kept raw, flash bytes that costs


def raw_kept(model: bytes) -> tuple:
    """(coded weights kept raw, flash bytes that costs) of a flash model; (0, 0) if none."""
    m = _schema().ModelT.InitFromPackedBuf(bytearray(model), 0)
    for e in m.metadata or []:
        name = e.name.decode() if isinstance(e.name, bytes) else e.name
        data = m.buffers[e.buffer].data
        if name == RAW_KEPT_METADATA and data is not None and len(data) == RAW_KEPT.size:
            return RAW_KEPT.unpack(bytes(np.asarray(data, np.uint8)))
    return 0, 0


def _flash_model(model: bytes, fills: list, keep_raw: int, meta) -> bytes:

    def decode_op(m, sg, c, t):
        f = c.fill
        name = _name(t)
        idx = _new_tensor(
            sg, _join(name, "yono_indices"), [len(f.payload)], UINT8, _new_buffer(m, f.payload)
        )
        rec = _new_tensor(
            sg,
            _join(name, "yono_record"),
            [fmt.FILL_RECORD.size],
            UINT8,
            _new_buffer(m, record_bytes(f)),
        )
        return _opcode(m, CUSTOM, DECODE_CUSTOM_CODE), [idx, rec]

    return _rewrite(model, fills, decode_op, keep_raw, meta and (RAW_KEPT_METADATA, meta))


def equivalent_model(model: bytes, fills: list, keep_raw: int = 0) -> bytes:
    """The flash model with each YONO_DECODE a RESHAPE of a constant holding the decoded bytes
    (same tensor count, same decoded-weight lifetimes): what TFLM's Python interpreter runs and
    sizes for a flash task."""

    def reshape_op(m, sg, c, t):
        f = c.fill
        name = _name(t)
        decoded = model[f.dst_offset : f.dst_offset + f.length]
        src = _new_tensor(sg, _join(name, "decoded"), [f.length], INT8, _new_buffer(m, decoded))
        shape = np.asarray(t.shape, "<i4").tobytes()
        dims = _new_tensor(sg, _join(name, "shape"), [len(t.shape)], INT32, _new_buffer(m, shape))
        return _opcode(m, RESHAPE, None), [src, dims]

    return _rewrite(model, fills, reshape_op, keep_raw)


def _join(name: str, what: str) -> str | None:
    return f"{name}/{what}" if name else None


def _name(t) -> str:
    """W's name for the names of its new tensors ("" when the build erased it)."""
    n = t.name
    n = (n.decode("utf-8", "replace") if isinstance(n, bytes) else n) or ""
    return n if n.strip("\0") else ""


class DecodeOp(NamedTuple):
    """One YONO_DECODE operator of a flash model."""

    name: str  # W's tensor name ("" when erased)
    shape: list
    fill: fmt.Fill  # its record, with the index array as payload (dst/src offsets 0)
    consumer: str  # builtin name of W's first consumer, e.g. "CONV_2D"


def decode_ops(model: bytes) -> list:
    """The coded weights of a flash model, one DecodeOp per YONO_DECODE operator, in operator
    order (for inspect, the build's self-check and tests)."""
    s = _schema()
    m = s.ModelT.InitFromPackedBuf(bytearray(model), 0)
    names = _builtin_names()
    out = []
    for sg in m.subgraphs:
        for k, op in enumerate(sg.operators):
            code = m.operatorCodes[op.opcodeIndex]
            cc = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            if code.builtinCode != CUSTOM or cc != DECODE_CUSTOM_CODE:
                continue
            idx_t, rec_t = (sg.tensors[i] for i in op.inputs)
            rec = bytes(np.asarray(m.buffers[rec_t.buffer].data, np.uint8))
            (_, length, kind, layout, mm, m2, first, p, _, inner, first2) = fmt.FILL_RECORD.unpack(
                rec
            )
            payload = bytes(np.asarray(m.buffers[idx_t.buffer].data, np.uint8))
            f = fmt.Fill(0, length, FillKind(kind), layout, first, mm, p, inner, payload)
            f.residual_first, f.residual_count = first2, m2
            w = int(op.outputs[0])
            consumer = next(
                (
                    names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")
                    for o in sg.operators[k + 1 :]
                    if o.inputs is not None and w in list(o.inputs)
                    for c in (m.operatorCodes[o.opcodeIndex],)
                ),
                "",
            )
            t = sg.tensors[w]
            out.append(DecodeOp(_name(t), [int(d) for d in t.shape], f, consumer))
    return out


def largest_decoded(fills: list) -> int:
    """Bytes of the largest coded weight: what one decode writes into the arena."""
    return max(
        (f.length for f in fills if f.kind in (FillKind.PQ, FillKind.PQ_RESIDUAL)), default=0
    )


class FlashCost(NamedTuple):
    """What a task costs in flash mode (`measure`)."""

    blockers: list  # why it cannot run in flash mode ([] if it can)
    arena: int  # its flash-mode arena with `raw_kept` coded weights raw (0: not measured)
    largest: int  # bytes of its largest decoded weight (the per-task bar's allowance; 0 when
    #   every coded weight is kept raw)
    raw_kept: int = 0  # smallest coded weights kept raw to meet the per-task bar


def measure(model: bytes, fills: list, name: str, rebuild_arena: int = 0) -> FlashCost:
    """The flash-mode cost of a rebuild-mode model. The arena is that of the equivalent model
    (TFLM's Python interpreter, yonoc/arena.py bisection, plus the CMSIS-NN margin).

    With its `rebuild_arena`, the task is made to meet the per-task SRAM bar (issue 14: flash
    arena <= rebuild arena + largest decoded weight) by construction: when the measured arena
    exceeds it, the fewest smallest coded weights stay raw (no decode op, no node and tensors
    for TFLM to keep, flash bytes instead of SRAM) that make the re-measured arena meet it;
    found by doubling then bisection over how many (assumes keeping more raw never needs a
    larger arena; every figure used is measured). If even all raw does not meet it, the task
    is blocked (stays in rebuild mode)."""
    from ..interpreter import measure_arena

    largest = largest_decoded(fills)
    why = blockers(model, fills)
    if why:
        return FlashCost(why, 0, largest)
    n = len(coded_buffers(model, fills))
    measured = {}

    def arena(k: int) -> int:
        if k not in measured:
            eq = equivalent_model(model, fills, k)
            measured[k] = measure_arena(eq, name=f"{name} (flash mode)")
        return measured[k]

    def decoded(k: int) -> int:  # the largest weight still decoded: smallest ones go raw first
        return largest if k < n else 0

    def meets(k: int) -> bool:
        return 0 < arena(k) <= rebuild_arena + decoded(k)

    if not rebuild_arena or not arena(0) or meets(0):
        return FlashCost([], arena(0), largest)
    lo, hi = 0, 1  # lo: measured over the bar
    while not meets(hi):
        if hi == n:
            over = arena(n) - rebuild_arena
            why = f"its flash arena is {over} B over the per-task bar with every coded weight raw"
            return FlashCost([why], 0, largest)
        lo, hi = hi, min(2 * hi, n)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if meets(mid) else (mid, hi)
    return FlashCost([], arena(hi), decoded(hi), hi)
