"""The whole operator graph of an int8 TFLite model, for the finetuning lift.

The frontend (`yonoc.frontend`) reads only what the compressor codes; finetuning needs every
operator, its options, every tensor's quantisation and the constant buffers (biases, pad
amounts, reduction axes). This module reads subgraph 0 into plain dataclasses. It also finds,
for each compressible weight tensor (`ModelIR.weights`), the operator consuming it and that
operator's bias tensor (location in the file and scale), so that a finetuned bias can be
written back into the rebuilt model bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tflite
from flatbuffers.number_types import UOffsetTFlags

from ..errors import ModelError
from ..frontend.tflite_reader import operator_names
from ..ir import ModelIR

_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_NUMPY = {"FLOAT32": np.float32, "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16,
          "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_, "FLOAT16": np.float16}
_ACT = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
_PAD = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
_BUFFER_DATA_SLOT = 4


@dataclass
class GTensor:
    index: int
    name: str
    shape: tuple
    dtype: str  # numpy dtype name
    scale: np.ndarray  # float64 (len 0: not quantised)
    zero_point: np.ndarray  # int64
    quantized_dimension: int
    offset: int | None  # file offset of the constant payload, None if not constant
    data: np.ndarray | None  # constant payload in `shape`, None if not constant

    @property
    def quantized(self) -> bool:
        return self.scale.size > 0 and self.dtype in ("int8", "uint8", "int16", "int32")


@dataclass
class GOp:
    index: int
    name: str  # builtin name, e.g. "CONV_2D"
    inputs: list  # tensor indices (-1: absent optional input)
    outputs: list
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list  # GTensor
    ops: list  # GOp, in execution order
    inputs: list  # tensor indices
    outputs: list


@dataclass
class LayerInfo:
    """Where compressible weight tensor `weight_index` of a ModelIR sits in the graph."""

    weight_index: int
    op_index: int  # first operator consuming it
    op_name: str
    tensor: int  # graph tensor index of the weights
    bias: int | None  # graph tensor index of the bias, if constant int32
    bias_offset: int | None
    bias_scale: np.ndarray | None  # input scale * weight scale, per output channel


def read_graph(data: bytes, path: str = "<model>") -> Graph:
    try:
        return _read(bytes(data))
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"{path}: cannot read the operator graph ({type(e).__name__}: {e})") \
            from None


def _buffer(model, index: int):
    buf = model.Buffers(index)
    if buf is None:
        return None, 0
    if buf.Offset() > 1:
        return buf.Offset(), buf.Size()
    o = UOffsetTFlags.py_type(buf._tab.Offset(_BUFFER_DATA_SLOT))
    if o == 0:
        return None, 0
    return buf._tab.Vector(o), buf._tab.VectorLen(o)


def _read(data: bytes) -> Graph:
    model = tflite.Model.GetRootAsModel(data, 0)
    opcodes = operator_names(model)
    sg = model.Subgraphs(0)
    tensors = []
    for ti in range(sg.TensorsLength()):
        t = sg.Tensors(ti)
        tname = _TYPE_NAMES.get(t.Type(), str(t.Type()))
        dtype = np.dtype(_NUMPY.get(tname, np.uint8)).name
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        if q is not None and q.ScaleLength():
            scale = q.ScaleAsNumpy().astype(np.float64)
            zp = (q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength()
                  else np.zeros(scale.size, np.int64))
            qdim = int(q.QuantizedDimension())
        else:
            scale, zp, qdim = np.zeros(0), np.zeros(0, np.int64), 0
        offset, arr = None, None
        if t.Buffer() > 0:
            start, length = _buffer(model, t.Buffer())
            if start is not None and length > 0:
                offset = int(start)
                arr = np.frombuffer(data, np.dtype(dtype), length // np.dtype(dtype).itemsize,
                                    start).reshape(shape).copy()
        tensors.append(GTensor(ti, (t.Name() or b"").decode("utf-8", "replace"), shape, dtype,
                               scale, zp, qdim, offset, arr))
    ops = []
    for oi in range(sg.OperatorsLength()):
        op = sg.Operators(oi)
        name = opcodes[op.OpcodeIndex()]
        ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append(GOp(oi, name, ins, outs, _options(name, op)))
    ins = [int(i) for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
    outs = [int(i) for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    return Graph(tensors, ops, ins, outs)


# operator name -> (options class, {option key: accessor name})
_OPTION_FIELDS = {
    "CONV_2D": ("Conv2DOptions", {"padding": "Padding", "stride_w": "StrideW",
                                  "stride_h": "StrideH", "dilation_w": "DilationWFactor",
                                  "dilation_h": "DilationHFactor",
                                  "activation": "FusedActivationFunction"}),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", {
        "padding": "Padding", "stride_w": "StrideW", "stride_h": "StrideH",
        "depth_multiplier": "DepthMultiplier", "dilation_w": "DilationWFactor",
        "dilation_h": "DilationHFactor", "activation": "FusedActivationFunction"}),
    "FULLY_CONNECTED": ("FullyConnectedOptions", {"activation": "FusedActivationFunction",
                                                  "keep_num_dims": "KeepNumDims"}),
    "ADD": ("AddOptions", {"activation": "FusedActivationFunction"}),
    "SUB": ("SubOptions", {"activation": "FusedActivationFunction"}),
    "MUL": ("MulOptions", {"activation": "FusedActivationFunction"}),
    "AVERAGE_POOL_2D": ("Pool2DOptions", {"padding": "Padding", "stride_w": "StrideW",
                                          "stride_h": "StrideH", "filter_w": "FilterWidth",
                                          "filter_h": "FilterHeight",
                                          "activation": "FusedActivationFunction"}),
    "MAX_POOL_2D": ("Pool2DOptions", {"padding": "Padding", "stride_w": "StrideW",
                                      "stride_h": "StrideH", "filter_w": "FilterWidth",
                                      "filter_h": "FilterHeight",
                                      "activation": "FusedActivationFunction"}),
    "CONCATENATION": ("ConcatenationOptions", {"axis": "Axis",
                                               "activation": "FusedActivationFunction"}),
    "MEAN": ("ReducerOptions", {"keep_dims": "KeepDims"}),
    "REDUCE_MAX": ("ReducerOptions", {"keep_dims": "KeepDims"}),
    "SUM": ("ReducerOptions", {"keep_dims": "KeepDims"}),
    "SOFTMAX": ("SoftmaxOptions", {"beta": "Beta"}),
}


def _options(name: str, op) -> dict:
    spec = _OPTION_FIELDS.get(name)
    out = {}
    if spec is None:
        return out
    cls_name, fields = spec
    table = op.BuiltinOptions()
    if table is None:
        return out
    opt = getattr(tflite, cls_name)()
    opt.Init(table.Bytes, table.Pos)
    for key, acc in fields.items():
        out[key] = getattr(opt, acc)()
    if "padding" in out:
        out["padding"] = _PAD.get(out["padding"], "VALID")
    if "activation" in out:
        out["activation"] = _ACT.get(out["activation"], str(out["activation"]))
    return out


def layer_map(model: ModelIR, graph: Graph) -> list:
    """A `LayerInfo` per compressible weight tensor of `model`, index-aligned."""
    by_offset = {t.offset: t.index for t in graph.tensors if t.offset is not None}
    first_use = {}
    for op in graph.ops:
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
            first_use.setdefault(op.inputs[1], op)
    out = []
    for wi, w in enumerate(model.weights):
        ti = by_offset.get(w.offset)
        op = first_use.get(ti) if ti is not None else None
        if op is None:
            raise ModelError(f"{model.name}: weight tensor {w.name!r} has no consuming "
                             "operator in subgraph 0")
        bias, boff, bscale = None, None, None
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bt = graph.tensors[op.inputs[2]]
            if bt.dtype == "int32" and bt.offset is not None and bt.data is not None:
                xin = graph.tensors[op.inputs[0]]
                wt = graph.tensors[ti]
                bias, boff = bt.index, bt.offset
                nout = bt.data.size
                ws = np.broadcast_to(wt.scale, (nout,)) if wt.scale.size in (1, nout) \
                    else np.full(nout, wt.scale.mean())
                bscale = (float(xin.scale[0]) if xin.scale.size else 1.0) * ws.astype(np.float64)
        out.append(LayerInfo(wi, op.index, op.name, ti, bias, boff, bscale))
    return out
