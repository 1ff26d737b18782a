"""Read int8 TFLite flatbuffers into the IR with the `tflite` schema package.

Only what the compressor needs is lifted: constant int8 weight tensors of 3x3 / 1x1
convolutions, 3x3 depthwise convolutions and fully-connected layers, where their payload lies in
the file, their quantisation, and the byte ranges of names that TFLM never reads. Everything else
stays in the flatbuffer untouched, so the backend can rebuild the file byte for byte.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import tflite
from flatbuffers.number_types import UOffsetTFlags

from ..errors import ModelError
from ..ir import Group, Layout, ModelIR, TensorInfo, WeightTensor

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    "FLOAT32": "float32", "INT8": "int8", "UINT8": "uint8", "INT16": "int16",
    "INT32": "int32", "INT64": "int64", "BOOL": "bool", "FLOAT16": "float16",
}
_TFLITE_IDENTIFIER = b"TFL3"
# Vtable slots (byte offsets in the vtable) of fields whose location we need.
_TENSOR_NAME_SLOT = 10
_SUBGRAPH_NAME_SLOT = 12
_MODEL_DESCRIPTION_SLOT = 10
_BUFFER_DATA_SLOT = 4


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


def _read(data: bytes, name: str, path: str) -> ModelIR:
    size = len(data)
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{path}: model has no subgraph")
    opcodes = []
    custom = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        opname = _OP_NAMES.get(code, f"BUILTIN_{code}")
        if opname == "CUSTOM":
            cname = (oc.CustomCode() or b"?").decode("utf-8", "replace")
            custom.append(cname)
            opname = f"CUSTOM:{cname}"
        opcodes.append(opname)

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
    for b, users in sorted(uses.items()):
        start, length = _buffer_span(model, b, size, path)
        if length == 0:
            continue
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
            channel_axis_len=shape[-1] if op_name_is_depthwise(opname) else shape[0],
        ))
    weights.sort(key=lambda w: w.offset)

    sg0 = model.Subgraphs(0)
    ins = [_tensor_info(sg0.Tensors(int(i)), path) for i in sg0.InputsAsNumpy()] \
        if sg0.InputsLength() else []
    outs = [_tensor_info(sg0.Tensors(int(i)), path) for i in sg0.OutputsAsNumpy()] \
        if sg0.OutputsLength() else []
    float_range = _float_input_range(sg0, opcodes) if ins and ins[0].dtype == "float32" else None
    return ModelIR(
        name=name, path=path, data=data, operators=dict(sorted(operators.items())),
        inputs=ins, outputs=outs, weights=weights, erasable=sorted(set(erasable)),
        custom_ops=sorted(set(custom)), float_input_range=float_range,
    )


def op_name_is_depthwise(opname: str) -> bool:
    return opname == "DEPTHWISE_CONV_2D"


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
