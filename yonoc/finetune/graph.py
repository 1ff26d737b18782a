"""Where each compressible weight tensor sits in the operator graph, for the finetuning lift.

The graph itself (every operator, its options, every tensor's quantisation and constant data)
is read by the frontend (`ModelIR.graph`). This module finds, for each compressible weight
tensor (`ModelIR.weights`), the operator consuming it and that operator's bias tensor
(location in the file and scale), so that a finetuned bias can be written back into the rebuilt
model bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import quant
from ..errors import ModelError
from ..ir import Graph, ModelIR


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


def graph_of(model: ModelIR) -> Graph:
    if model.graph is None:
        raise ModelError(f"{model.name}: no operator graph was read for this model")
    return model.graph


def layer_map(model: ModelIR) -> list[LayerInfo]:
    """A `LayerInfo` per compressible weight tensor of `model`, index-aligned."""
    graph = graph_of(model)
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
            raise ModelError(
                f"{model.name}: weight tensor {w.name!r} has no consuming operator in subgraph 0"
            )
        bias, boff, bscale = None, None, None
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bt = graph.tensors[op.inputs[2]]
            if bt.dtype == "int32" and bt.offset is not None and bt.data is not None:
                xin = graph.tensors[op.inputs[0]]
                bias, boff = bt.index, bt.offset
                nout = bt.data.size
                ws = quant.channel_view(graph.tensors[ti].scale, (nout,), 0)
                ws = np.broadcast_to(ws, (nout,))
                bscale = (float(xin.scale[0]) if xin.scale.size else 1.0) * ws.astype(np.float64)
        out.append(LayerInfo(wi, op.index, op.name, ti, bias, boff, bscale))
    return out
