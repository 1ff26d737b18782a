"""Read int8 TFLite flatbuffers into the IR with the `tflite` schema package.

Only what the compressor needs is lifted: constant int8 weight tensors of 3x3 / 1x1
convolutions, 3x3 depthwise convolutions and fully-connected layers, where their payload lies in
the file, their quantisation, and the byte ranges of names that TFLM never reads. Everything else
stays in the flatbuffer untouched, so the backend can rebuild the file byte for byte.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import numpy as np
import tflite
from flatbuffers.number_types import Int32Flags, UOffsetTFlags

from ..errors import ModelError
from ..ir import Group, Layout, ModelIR, TensorInfo, WeightTensor

log = logging.getLogger("yonoc")

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    "FLOAT32": "float32", "INT8": "int8", "UINT8": "uint8", "INT16": "int16",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FLOAT16": "float16",
}
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_FLOAT_TYPES = (tflite.TensorType.FLOAT32, tflite.TensorType.FLOAT16)
_TFLITE_IDENTIFIER = b"TFL3"
# Vtable slots (byte offsets in the vtable) of fields whose location we need.
_TENSOR_NAME_SLOT = 10
_SUBGRAPH_NAME_SLOT = 12
_MODEL_DESCRIPTION_SLOT = 10
_BUFFER_DATA_SLOT = 4
_OPCODE_BUILTIN_SLOT = 10


def read_model(path: str, name: str | None = None) -> ModelIR:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    stem = name or os.path.splitext(os.path.basename(path))[0]
    return read_model_bytes(data, stem, path)


def read_model_bytes(data: bytes, name: str, path: str = "<bytes>") -> ModelIR:
    if len(data) < 16 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ModelError(f"{path}: not a TFLite model (no 'TFL3' file identifier)")
    try:
        return _read(bytes(data), name, path)
    except ModelError:
        raise
    except Exception as e:  # the flatbuffers runtime raises anything on garbage
        raise ModelError(f"{path}: not a valid TFLite flatbuffer (truncated or corrupt: "
                         f"{type(e).__name__})") from None


def builtin_code(oc) -> int:
    """The operator code as TFLM reads it: max(builtin_code, deprecated_builtin_code).

    `tflite.OperatorCode.BuiltinCode()` returns the deprecated field for codes below 127, which
    is 0 (ADD) in files that set only `builtin_code` (valid, e.g. written by TFLM's
    model_editor); read the raw field instead.
    """
    o = UOffsetTFlags.py_type(oc._tab.Offset(_OPCODE_BUILTIN_SLOT))
    code = oc._tab.Get(Int32Flags, o + oc._tab.Pos) if o else 0
    return max(int(code), int(oc.DeprecatedBuiltinCode()))


def _vector_span(table, slot: int) -> tuple[int, int] | None:
    """(absolute position, element count) of a vector/string field, or None if absent."""
    o = UOffsetTFlags.py_type(table._tab.Offset(slot))
    if o == 0:
        return None
    return table._tab.Vector(o), table._tab.VectorLen(o)


def _check_span(path, what, start, length, size):
    if start < 0 or length < 0 or start + length > size:
        raise ModelError(f"{path}: {what} lies outside the file (truncated or corrupt)")


def _buffer_span(model, index: int, size: int, path: str) -> tuple[int, int]:
    buf = model.Buffers(index)
    if buf is None:
        raise ModelError(f"{path}: tensor refers to missing buffer {index}")
    if buf.Offset() > 1:  # large-model layout: data appended after the flatbuffer
        start, length = buf.Offset(), buf.Size()
    else:
        span = _vector_span(buf, _BUFFER_DATA_SLOT)
        start, length = span if span else (0, 0)
    _check_span(path, f"buffer {index}", start, length, size)
    return start, length


def _tensor_info(t, path) -> TensorInfo:
    tname = _TYPE_NAMES.get(t.Type(), str(t.Type()))
    q = t.Quantization()
    scale, zp = 0.0, 0
    if q is not None and q.ScaleLength() > 0:
        scale = float(q.Scale(0))
        zp = int(q.ZeroPoint(0)) if q.ZeroPointLength() > 0 else 0
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    return TensorInfo(
        name=(t.Name() or b"").decode("utf-8", "replace"),
        shape=shape,
        dtype=_NUMPY_TYPES.get(tname, tname.lower()),
        scale=scale,
        zero_point=zp,
    )


def _classify(op_name: str, shape: tuple[int, ...]):
    """(group, layout, P, I) for a weight tensor this operator reads, or None to keep raw."""
    if op_name == "CONV_2D" and len(shape) == 4:
        o, h, w, i = shape
        if (h, w) == (3, 3):
            return Group.CONV3X3, Layout.KERNEL_MAJOR, 9, i
        if (h, w) == (1, 1):
            return Group.POINTWISE, Layout.LINEAR, 1, 1
    if op_name == "DEPTHWISE_CONV_2D" and len(shape) == 4 and shape[0] == 1:
        _, h, w, c = shape
        if (h, w) == (3, 3):
            return Group.CONV3X3, Layout.KERNEL_MAJOR, 9, c
    if op_name == "FULLY_CONNECTED" and len(shape) == 2:
        return Group.POINTWISE, Layout.LINEAR, 1, 1
    return None


def operator_names(model) -> list:
    """Name of every operator code: the builtin name, or `CUSTOM:<custom code>`."""
    names = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = builtin_code(oc)
        name = _OP_NAMES.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (oc.CustomCode() or b"?").decode("utf-8", "replace")
        names.append(name)
    return names


def _read(data: bytes, name: str, path: str) -> ModelIR:
    size = len(data)
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{path}: model has no subgraph")
    opcodes = operator_names(model)
    custom = [op[len("CUSTOM:"):] for op in opcodes if op.startswith("CUSTOM:")]

    operators: Counter = Counter()
    # buffer index -> list of (tensor, op name, subgraph index); a buffer is compressed only if
    # every use agrees on how (shared weights stay consistent).
    uses: dict[int, list] = {}
    erasable: list[tuple[int, int]] = []
    for sgi in range(model.SubgraphsLength()):
        sg = model.Subgraphs(sgi)
        span = _vector_span(sg, _SUBGRAPH_NAME_SLOT)
        if span and span[1]:
            erasable.append((span[0] - 4, span[1] + 5))
        for ti in range(sg.TensorsLength()):
            span = _vector_span(sg.Tensors(ti), _TENSOR_NAME_SLOT)
            if span and span[1]:
                erasable.append((span[0] - 4, span[1] + 5))
        for oi in range(sg.OperatorsLength()):
            op = sg.Operators(oi)
            idx = op.OpcodeIndex()
            if idx >= len(opcodes):
                raise ModelError(f"{path}: operator refers to missing operator code {idx}")
            opname = opcodes[idx]
            operators[opname] += 1
            inputs = op.InputsAsNumpy() if op.InputsLength() else []
            for pos, ti in enumerate(inputs):
                if ti < 0:
                    continue
                t = sg.Tensors(int(ti))
                if t is None:
                    raise ModelError(f"{path}: operator input refers to missing tensor {ti}")
                b = t.Buffer()
                if b == 0:
                    continue
                uses.setdefault(b, []).append((t, opname if pos == 1 else None, sgi))
    span = _vector_span(model, _MODEL_DESCRIPTION_SLOT)
    if span and span[1]:
        erasable.append((span[0] - 4, span[1] + 5))
    for start, length in erasable:
        _check_span(path, "a name", start, length, size)

    weights: list[WeightTensor] = []
    float_weights = 0
    for b, users in sorted(uses.items()):
        start, length = _buffer_span(model, b, size, path)
        if length == 0:
            continue
        if any(t.Type() in _FLOAT_TYPES and opname in _WEIGHT_OPS for t, opname, _ in users):
            float_weights += 1
        kinds = set()
        for t, opname, _ in users:
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            ok = (opname is not None and t.Type() == tflite.TensorType.INT8
                  and t.Sparsity() is None and int(np.prod(shape, dtype=np.int64)) == length)
            kinds.add((_classify(opname, shape), shape) if ok else None)
        if len(kinds) != 1 or None in kinds:
            continue
        (cls, shape), = kinds
        if cls is None:
            continue
        group, layout, p, i = cls
        t, opname, _ = users[0]
        q = t.Quantization()
        scales = (q.ScaleAsNumpy().astype(np.float32) if q is not None and q.ScaleLength()
                  else np.ones(1, np.float32))
        qdim = q.QuantizedDimension() if q is not None else 0
        axis = 3 if opname == "DEPTHWISE_CONV_2D" else 0
        if scales.size > 1 and shape[axis] == scales.size:
            qdim = axis  # where TFLM's kernels apply the scales, whatever the field says
        weights.append(WeightTensor(
            name=(t.Name() or b"").decode("utf-8", "replace"),
            op_type=opname,
            shape=shape,
            group=group,
            layout=layout,
            kernel_positions=p,
            inner_channels=i,
            offset=start,
            values=np.frombuffer(data, np.int8, length, start).copy(),
            scales=scales,
            quantized_dimension=int(qdim),
        ))
    weights.sort(key=lambda w: w.offset)
    if float_weights:
        log.warning("%s: %d float conv/FC weight tensor(s) stay raw: yonoc compresses int8 "
                    "weights only (quantise the model to int8 to compress it)", name,
                    float_weights)

    sg0 = model.Subgraphs(0)
    ins = [_tensor_info(sg0.Tensors(int(i)), path) for i in sg0.InputsAsNumpy()] \
        if sg0.InputsLength() else []
    outs = [_tensor_info(sg0.Tensors(int(i)), path) for i in sg0.OutputsAsNumpy()] \
        if sg0.OutputsLength() else []
    float_range = _float_input_range(sg0, opcodes) if ins and ins[0].dtype == "float32" else None
    classifier = _is_classifier(sg0, opcodes) or _looks_like_logits(ins, outs)
    return ModelIR(
        name=name, path=path, data=data, operators=dict(sorted(operators.items())),
        inputs=ins, outputs=outs, weights=weights, erasable=sorted(set(erasable)),
        custom_ops=sorted(set(custom)), float_input_range=float_range, classifier=classifier,
    )



def _is_classifier(sg, opcodes) -> bool:
    """Output 0 comes from a SOFTMAX (maybe through reshapes and (de)quantisation): top-1
    agreement is meaningful for it, unlike for a regression or an autoencoder output."""
    if not sg.OutputsLength():
        return False
    producer = {}
    for oi in range(sg.OperatorsLength()):
        op = sg.Operators(oi)
        for t in (op.OutputsAsNumpy() if op.OutputsLength() else []):
            producer[int(t)] = op
    t = int(sg.OutputsAsNumpy()[0])
    for _ in range(8):
        op = producer.get(t)
        if op is None:
            return False
        name = opcodes[op.OpcodeIndex()]
        if name == "SOFTMAX":
            return True
        if name not in ("DEQUANTIZE", "QUANTIZE", "RESHAPE") or not op.InputsLength():
            return False
        t = int(op.InputsAsNumpy()[0])
    return False


def _looks_like_logits(ins, outs) -> bool:
    """A [1, C] output with a few classes that is not a reconstruction of the input."""
    if not ins or not outs or len(outs[0].shape) != 2 or outs[0].shape[0] != 1:
        return False
    classes = outs[0].shape[1]
    return 2 <= classes <= 256 and classes != int(np.prod(ins[0].shape))


def _float_input_range(sg, opcodes) -> tuple[float, float] | None:
    """Real-valued range a float input is quantised into by the QUANTIZE op that reads it."""
    tin = int(sg.InputsAsNumpy()[0])
    for oi in range(sg.OperatorsLength()):
        op = sg.Operators(oi)
        if opcodes[op.OpcodeIndex()] != "QUANTIZE" or not op.InputsLength():
            continue
        if int(op.InputsAsNumpy()[0]) != tin:
            continue
        info = _tensor_info(sg.Tensors(int(op.OutputsAsNumpy()[0])), "")
        lo, hi = (-128, 127) if info.dtype == "int8" else (0, 255)
        return (info.scale * (lo - info.zero_point), info.scale * (hi - info.zero_point))
    return None
