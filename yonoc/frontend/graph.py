"""Subgraph 0 of a TFLite model as an `ir.Graph`: every operator with its options, every tensor
with its quantisation and constant data (biases, pad amounts, reduction axes).

The compressor itself needs only the weight tensors; the finetuning lift computes the whole
graph in float, so it reads everything from here rather than from the file.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Operator, Tensor
from .flatbuffer import buffer_span, numpy_type, operator_options


def read_graph(model, data: bytes, opcodes: list[str], path: str) -> Graph:
    """`model`: the parsed `tflite.Model` of `data`; `opcodes`: its operator names."""
    sg = model.Subgraphs(0)
    tensors = [_tensor(model, sg.Tensors(ti), ti, data, path) for ti in range(sg.TensorsLength())]
    ops = []
    for oi in range(sg.OperatorsLength()):
        op = sg.Operators(oi)
        name = opcodes[op.OpcodeIndex()]
        ops.append(
            Operator(
                oi,
                name,
                _ints(op.InputsAsNumpy, op.InputsLength()),
                _ints(op.OutputsAsNumpy, op.OutputsLength()),
                operator_options(name, op),
            )
        )
    return Graph(
        tensors,
        ops,
        _ints(sg.InputsAsNumpy, sg.InputsLength()),
        _ints(sg.OutputsAsNumpy, sg.OutputsLength()),
    )


def _ints(as_numpy, length: int) -> list[int]:
    return [int(i) for i in as_numpy()] if length else []


def _tensor(model, t, index: int, data: bytes, path: str) -> Tensor:
    dtype = numpy_type(t.Type())
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    q = t.Quantization()
    if q is not None and q.ScaleLength():
        scale = q.ScaleAsNumpy().astype(np.float64)
        zp = (
            q.ZeroPointAsNumpy().astype(np.int64)
            if q.ZeroPointLength()
            else np.zeros(scale.size, np.int64)
        )
        qdim = int(q.QuantizedDimension())
    else:
        scale, zp, qdim = np.zeros(0), np.zeros(0, np.int64), 0
    offset, arr = None, None
    if t.Buffer() > 0:
        start, length = buffer_span(model, t.Buffer(), len(data), path)
        if length > 0:
            offset = int(start)
            arr = _constant(data, start, length, dtype, shape)
    return Tensor(
        index,
        (t.Name() or b"").decode("utf-8", "replace"),
        shape,
        dtype,
        scale,
        zp,
        qdim,
        offset,
        arr,
    )


def _constant(
    data: bytes, start: int, length: int, dtype: str, shape: tuple[int, ...]
) -> np.ndarray | None:
    """The payload as a read-only view in `shape`; None if it is not a plain array of it
    (strings, sparse or packed tensors: nothing the lift computes with)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != length:
        return None
    return np.frombuffer(data, dt, length // dt.itemsize, start).reshape(shape)
