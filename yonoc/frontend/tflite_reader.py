"""Read int8 TFLite flatbuffers into the IR with the `tflite` schema package.

Only what the compressor needs is lifted: constant int8 weight tensors of convolutions and
depthwise convolutions of any kernel size and of fully-connected layers, where their payload lies in
the file, their quantisation, and the byte ranges of names that TFLM never reads. Everything else
stays in the flatbuffer untouched, so the backend can rebuild the file byte for byte.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import numpy as np
import tflite

from ..errors import ModelError
from ..ir import Graph, Group, Layout, ModelIR, Tensor, TensorInfo, WeightTensor
from .flatbuffer import (
    MODEL_DESCRIPTION_SLOT,
    SUBGRAPH_NAME_SLOT,
    TENSOR_NAME_SLOT,
    TFLITE_IDENTIFIER,
    buffer_span,
    check_span,
    operator_names,
    vector_span,
)
from .graph import read_graph

log = logging.getLogger("yonoc")

_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_FLOAT_TYPES = (tflite.TensorType.FLOAT32, tflite.TensorType.FLOAT16)


def read_model(path: str, name: str | None = None) -> ModelIR:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    stem = name or os.path.splitext(os.path.basename(path))[0]
    return read_model_bytes(data, stem, path)


def read_model_bytes(data: bytes, name: str, path: str = "<bytes>") -> ModelIR:
    if len(data) < 16 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{path}: not a TFLite model (no 'TFL3' file identifier)")
    try:
        return _read(bytes(data), name, path)
    except ModelError:
        raise
    except Exception as e:  # the flatbuffers runtime raises anything on garbage
        what = (
            "an offset or length points past the end of the file"
            if type(e).__name__ in ("error", "IndexError", "OverflowError")
            else type(e).__name__
        )  # struct.error and friends: data that is not there
        raise ModelError(
            f"{path}: not a valid TFLite flatbuffer, truncated or corrupt ({what})"
        ) from None


def _classify(op_name: str, shape: tuple[int, ...]) -> tuple[Group, int, int] | None:
    """(group, P, I) for a weight tensor this operator reads, or None to keep raw.

    P x I is the kernel geometry ([O, P, I] in the file, P = H*W) that a kernel-major layout
    walks; which layout the vectors use is the encoding's option (passes.encode.set_layout).
    3x3 kernels are group A and 1x1/FC group B (the paper's groups); every other kernel shape
    (1-D [O,k,1,I], 5x5, 7x7, 10x4, depthwise 5x5...) joins group B: measured on all 23 models
    here it codes them 0.1-0.5 dB better than group A and within 0.5 dB of a third group of
    their own, which would cost its own codebooks (docs/image-format.md, "Groups").
    """
    if op_name == "CONV_2D" and len(shape) == 4:
        o, h, w, i = shape
        if (h, w) == (3, 3):
            return Group.CONV3X3, 9, i
        return Group.POINTWISE, h * w, i if h * w > 1 else 1
    if op_name == "DEPTHWISE_CONV_2D" and len(shape) == 4 and shape[0] == 1:
        _, h, w, c = shape
        if (h, w) == (3, 3):
            return Group.CONV3X3, 9, c
        return Group.POINTWISE, h * w, c if h * w > 1 else 1
    if op_name == "FULLY_CONNECTED" and len(shape) == 2:
        return Group.POINTWISE, 1, 1
    return None


def _read(data: bytes, name: str, path: str) -> ModelIR:
    size = len(data)
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelError(f"{path}: model has no subgraph")
    opcodes = operator_names(model)
    custom = [op[len("CUSTOM:") :] for op in opcodes if op.startswith("CUSTOM:")]

    operators: Counter = Counter()
    # buffer index -> list of (tensor, op name, subgraph index); a buffer is compressed only if
    # every use agrees on how (shared weights stay consistent).
    uses: dict[int, list] = {}
    erasable: list[tuple[int, int]] = []
    for sgi in range(model.SubgraphsLength()):
        sg = model.Subgraphs(sgi)
        span = vector_span(sg, SUBGRAPH_NAME_SLOT)
        if span and span[1]:
            erasable.append((span[0] - 4, span[1] + 5))
        for ti in range(sg.TensorsLength()):
            span = vector_span(sg.Tensors(ti), TENSOR_NAME_SLOT)
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
    span = vector_span(model, MODEL_DESCRIPTION_SLOT)
    if span and span[1]:
        erasable.append((span[0] - 4, span[1] + 5))
    for start, length in erasable:
        check_span(path, "a name", start, length, size)

    weights: list[WeightTensor] = []
    float_weights = 0
    for b, users in sorted(uses.items()):
        start, length = buffer_span(model, b, size, path)
        if length == 0:
            continue
        if any(t.Type() in _FLOAT_TYPES and opname in _WEIGHT_OPS for t, opname, _ in users):
            float_weights += 1
        kinds = set()
        for t, opname, _ in users:
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            ok = (
                opname is not None
                and t.Type() == tflite.TensorType.INT8
                and t.Sparsity() is None
                and int(np.prod(shape, dtype=np.int64)) == length
            )
            kinds.add((_classify(opname, shape), shape) if ok else None)
        if len(kinds) != 1 or None in kinds:
            continue
        ((cls, shape),) = kinds
        if cls is None:
            continue
        group, p, i = cls
        t, opname, _ = users[0]
        q = t.Quantization()
        scales = (
            q.ScaleAsNumpy().astype(np.float32)
            if q is not None and q.ScaleLength()
            else np.ones(1, np.float32)
        )
        qdim = q.QuantizedDimension() if q is not None else 0
        axis = 3 if opname == "DEPTHWISE_CONV_2D" else 0
        if scales.size > 1 and shape[axis] == scales.size:
            qdim = axis  # where TFLM's kernels apply the scales, whatever the field says
        weights.append(
            WeightTensor(
                name=(t.Name() or b"").decode("utf-8", "replace"),
                op_type=opname,
                shape=shape,
                group=group,
                layout=Layout.LINEAR,  # file order until the encoding picks its layout
                kernel_positions=p,
                inner_channels=i,
                offset=start,
                values=np.frombuffer(data, np.int8, length, start).copy(),
                scales=scales,
                quantized_dimension=int(qdim),
            )
        )
    weights.sort(key=lambda w: w.offset)
    if float_weights:
        log.warning(
            "%s: %d float conv/FC weight tensor(s) stay raw: yonoc compresses int8 "
            "weights only (quantise the model to int8 to compress it)",
            name,
            float_weights,
        )

    graph = read_graph(model, data, opcodes, path)
    ins = [_tensor_info(graph.tensors[i]) for i in graph.inputs]
    outs = [_tensor_info(graph.tensors[i]) for i in graph.outputs]
    float_range = _float_input_range(graph) if ins and ins[0].dtype == "float32" else None
    classifier = _is_classifier(graph) or _looks_like_logits(ins, outs)
    return ModelIR(
        name=name,
        path=path,
        data=data,
        operators=dict(sorted(operators.items())),
        inputs=ins,
        outputs=outs,
        weights=weights,
        erasable=sorted(set(erasable)),
        custom_ops=sorted(set(custom)),
        float_input_range=float_range,
        classifier=classifier,
        graph=graph,
    )


def _tensor_info(t: Tensor) -> TensorInfo:
    """Per-tensor view of a model input or output (its first scale and zero point)."""
    return TensorInfo(
        name=t.name,
        shape=t.shape,
        dtype=t.dtype,
        scale=float(t.scale[0]) if t.scale.size else 0.0,
        zero_point=int(t.zero_point[0]) if t.zero_point.size else 0,
    )


def _is_classifier(graph: Graph) -> bool:
    """Output 0 comes from a SOFTMAX (maybe through reshapes and (de)quantisation): top-1
    agreement is meaningful for it, unlike for a regression or an autoencoder output."""
    if not graph.outputs:
        return False
    producer = {t: op for op in graph.ops for t in op.outputs}
    t = graph.outputs[0]
    for _ in range(8):
        op = producer.get(t)
        if op is None:
            return False
        if op.name == "SOFTMAX":
            return True
        if op.name not in ("DEQUANTIZE", "QUANTIZE", "RESHAPE") or not op.inputs:
            return False
        t = op.inputs[0]
    return False


def _looks_like_logits(ins: list[TensorInfo], outs: list[TensorInfo]) -> bool:
    """A [1, C] output with a few classes that is not a reconstruction of the input."""
    if not ins or not outs or len(outs[0].shape) != 2 or outs[0].shape[0] != 1:
        return False
    classes = outs[0].shape[1]
    return 2 <= classes <= 256 and classes != int(np.prod(ins[0].shape))


def _float_input_range(graph: Graph) -> tuple[float, float] | None:
    """Real-valued range a float input is quantised into by the QUANTIZE op that reads it."""
    tin = graph.inputs[0]
    for op in graph.ops:
        if op.name != "QUANTIZE" or not op.inputs or op.inputs[0] != tin:
            continue
        info = _tensor_info(graph.tensors[op.outputs[0]])
        lo, hi = (-128, 127) if info.dtype == "int8" else (0, 255)
        return (info.scale * (lo - info.zero_point), info.scale * (hi - info.zero_point))
    return None
