"""Lift an int8 TFLite graph into a float PyTorch module with fake quantisation.

Every activation tensor is rounded to its int8 (uint8/int16) grid with the tensor's own scale
and zero point, weights to their per-channel int8 grid and biases to their int32 grid
(scale = input scale x weight scale), so that the float module tracks what TFLM computes up to
the fixed-point requantisation rounding (±1 LSB now and then). Gradients pass the rounding
straight through (STE). Tensors are kept in TFLite's NHWC layout so reshapes, reductions and
concatenations keep TFLite's axis semantics; convolutions permute around torch's NCHW.

The lift is for training only: accuracy is always measured on the int8 model in TFLM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from .. import quant
from ..errors import LiftError, MissingDependencyError
from ..ir import Graph, ModelIR, Tensor
from .coded import codeword_stages, nearest_codewords
from .graph import graph_of, layer_map

if TYPE_CHECKING:
    from . import CodedLayer

SUPPORTED_OPS = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "EXPAND_DIMS",
    "FULLY_CONNECTED",
    "HARD_SWISH",
    "LEAKY_RELU",
    "LOGISTIC",
    "MAXIMUM",
    "MAX_POOL_2D",
    "MEAN",
    "MINIMUM",
    "MUL",
    "PAD",
    "PADV2",
    "QUANTIZE",
    "REDUCE_MAX",
    "RELU",
    "RELU6",
    "RESHAPE",
    "SOFTMAX",
    "SQUEEZE",
    "SUB",
    "SUM",
    "TANH",
)


def require_torch() -> ModuleType:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "finetuning with the reference hook needs PyTorch: pip install 'yonoc[torch]' "
            "(or pip install torch==2.13.0)"
        ) from None
    return torch


def shape_only_ops(graph: Graph) -> set[int]:
    """Indices of the operators that only compute a RESHAPE's target shape, e.g. Keras's
    Flatten with a dynamic batch: SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE (the ST model
    zoo's image classifiers). The lift reshapes to the output tensor's static shape, so these
    never run in it, whatever their kind."""
    consumers: dict[int, list] = {}
    for k, op in enumerate(graph.ops):
        for pos, ti in enumerate(op.inputs):
            consumers.setdefault(ti, []).append((k, pos))
    outputs = set(graph.outputs)
    found: set[int] = set()
    for k in range(len(graph.ops) - 1, -1, -1):  # TFLite orders operators topologically
        outs = graph.ops[k].outputs
        if outs and all(
            ti not in outputs
            and graph.tensors[ti].dtype in ("int32", "int64")
            and not graph.tensors[ti].quantized
            and consumers.get(ti)
            and all(
                j in found or (graph.ops[j].name == "RESHAPE" and pos == 1)
                for j, pos in consumers[ti]
            )
            for ti in outs
        ):
            found.add(k)
    return found


def check_supported(graph: Graph, name: str) -> set[int]:
    """Raises LiftError naming what the lift lacks; returns the shape-only operators it skips."""
    skip = shape_only_ops(graph)
    bad = sorted(
        {
            op.name
            for k, op in enumerate(graph.ops)
            if op.name not in SUPPORTED_OPS and k not in skip
        }
    )
    if bad:
        raise LiftError(
            f"{name}: the finetuning lift does not support operator(s) "
            f"{', '.join(bad)} (supported operators: docs/finetuning.md)"
        )
    return skip


def _qrange(dtype: str):
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _batched(shape) -> tuple:
    shape = tuple(int(d) for d in shape)
    if shape and shape[0] == 1:
        return (-1,) + shape[1:]
    return (-1,) + shape


def _same_pad(size, k, stride, dil):
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dil + 1 - size, 0)
    return total // 2, total - total // 2


def conv_window(x, kh: int, kw: int, options: dict) -> tuple:
    """(x padded as TFLite pads it, strides, dilations) for a kh x kw convolution window over
    NCHW `x` with a CONV_2D / DEPTHWISE_CONV_2D operator's options."""
    import torch.nn.functional as F

    sh, sw = options.get("stride_h", 1), options.get("stride_w", 1)
    dh, dw = options.get("dilation_h", 1) or 1, options.get("dilation_w", 1) or 1
    if options.get("padding") == "SAME":
        ph = _same_pad(x.shape[2], kh, sh, dh)
        pw = _same_pad(x.shape[3], kw, sw, dw)
        x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
    return x, (sh, sw), (dh, dw)


def build_lift(
    model: ModelIR,
    weights: Sequence[np.ndarray] | None = None,
    biases: Mapping[int, np.ndarray] | None = None,
    trainable: Iterable[int] = (),
    dtype=None,
    bias_trainable: Iterable[int] | None = None,
    coded: Mapping[int, CodedLayer] | None = None,
):
    """A `torch.nn.Module` computing `model` in float with fake quantisation.

    weights: optional float (real-domain) arrays, index-aligned with `model.weights`, replacing
    the file's values (e.g. codebook reconstructions); biases: optional {layer index: float
    real-domain bias}. Layers in `trainable` get weight parameters, layers in `bias_trainable`
    (default: `trainable`) bias parameters; everything else is a constant. Trainable layers in
    `coded` ({layer index: finetune.CodedLayer}) compute with the nearest codewords of their
    weights (straight-through). Forward takes the model input in its float (real) domain.
    """
    torch = require_torch()
    graph = graph_of(model)
    shape_only = check_supported(graph, model.name)
    trainable = set(trainable)
    bias_trainable = trainable if bias_trainable is None else set(bias_trainable)
    return _make_module(
        torch,
        model,
        graph,
        weights,
        biases,
        trainable,
        bias_trainable,
        coded or {},
        dtype or torch.float32,
        shape_only,
    )


def _make_module(
    torch, model, graph, weights, biases, trainable, bias_trainable, coded, dtype, shape_only
):
    import torch.nn.functional as F

    layers = layer_map(model)
    biases = biases or {}

    def fq(x, scale, zp, qmin, qmax):
        if isinstance(scale, float) and qmax <= 2**16:  # fused kernel (STE, clamp-masked)
            return torch.fake_quantize_per_tensor_affine(x, scale, int(zp), qmin, qmax)
        q = torch.clamp(torch.round(x / scale) + zp, qmin, qmax)
        y = (q - zp) * scale
        return x + (y - x).detach()

    def const(t):
        """A non-trainable constant tensor, dequantised."""
        a = t.data
        if t.quantized and a.dtype.kind in "iu":
            a = quant.dequantize(
                a,
                quant.channel_view(t.scale, t.shape, t.quantized_dimension),
                quant.channel_view(t.zero_point, t.shape, t.quantized_dimension),
            )
        return torch.as_tensor(np.asarray(a, np.float64), dtype=dtype)

    class Lifted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.graph = graph
            self.layers = layers
            self.w_params = torch.nn.ParameterDict()
            self.b_params = torch.nn.ParameterDict()
            self.consts = {}
            self.w_scale = {}  # tensor index -> per-channel scale, broadcastable (trainable)
            self.b_unit = {}  # layer index -> (bias scale per channel, output scale)
            self.coded = {}  # tensor index -> (codeword tensors, s, permutation or None)
            for li in layers:
                wt = graph.tensors[li.tensor]
                w = (
                    np.asarray(weights[li.weight_index], np.float64).reshape(wt.shape)
                    if weights is not None
                    else const(wt).double().numpy()
                )
                sc = _channel_scale(wt)
                if li.weight_index in trainable:
                    self.w_params[str(li.tensor)] = torch.nn.Parameter(
                        torch.as_tensor(w / sc, dtype=dtype)
                    )
                    self.w_scale[li.tensor] = torch.as_tensor(sc, dtype=dtype)
                    c = coded.get(li.weight_index)
                    if c is not None:
                        perm = (
                            None
                            if c.permutation is None
                            else torch.as_tensor(np.asarray(c.permutation, np.int64))
                        )
                        self.coded[li.tensor] = (
                            codeword_stages(torch, c, dtype),
                            perm,
                        )
                else:
                    self.consts[li.tensor] = torch.as_tensor(w, dtype=dtype)
                if li.bias is not None:
                    b = biases.get(li.weight_index)
                    b = (
                        np.asarray(b, np.float64)
                        if b is not None
                        else graph.tensors[li.bias].data.astype(np.float64) * li.bias_scale
                    )
                    op = graph.ops[li.op_index]
                    osc = graph.tensors[op.outputs[0]].scale
                    unit = float(osc[0]) if osc.size else 1.0
                    if li.weight_index in bias_trainable:
                        self.b_params[str(li.bias)] = torch.nn.Parameter(
                            torch.as_tensor(b / unit, dtype=dtype)
                        )
                        self.b_unit[li.bias] = (torch.as_tensor(li.bias_scale, dtype=dtype), unit)
                    else:
                        self.consts[li.bias] = torch.as_tensor(b, dtype=dtype)
            for t in graph.tensors:
                if (
                    t.data is not None
                    and t.index not in self.consts
                    and str(t.index) not in self.w_params
                    and str(t.index) not in self.b_params
                ):
                    if t.dtype in ("int32", "int64") and not t.quantized:
                        continue  # shapes, axes, paddings: read from t.data
                    self.consts[t.index] = const(t)
            self.head = _head_tensor(graph)

        def tensor(self, ti):
            if str(ti) in self.w_params:
                p = self.w_params[str(ti)]
                if ti in self.coded:
                    q = p + (nearest_codewords(torch, p.detach(), *self.coded[ti]) - p).detach()
                else:
                    q = fq(p, 1.0, 0.0, -127, 127)
                return q * self.w_scale[ti]
            if str(ti) in self.b_params:
                p = self.b_params[str(ti)]
                bsc, unit = self.b_unit[ti]
                b = p * unit
                return fq(b, bsc, 0.0, -(2**31), 2**31 - 1)
            return self.consts[ti]

        def to_device(self, device):
            """Move the parameters and every constant (plain dicts, not buffers) to `device`."""
            self.to(device)
            self.consts = {k: v.to(device) for k, v in self.consts.items()}
            self.w_scale = {k: v.to(device) for k, v in self.w_scale.items()}
            self.b_unit = {k: (v[0].to(device), v[1]) for k, v in self.b_unit.items()}
            self.coded = {
                k: (
                    [([b.to(device) for b in subs], sl) for subs, sl in c[0]],
                    None if c[1] is None else c[1].to(device),
                )
                for k, c in self.coded.items()
            }
            return self

        def weight_values(self):
            """{layer index: float real-domain weights} of the trainable layers."""
            out = {}
            for li in self.layers:
                if str(li.tensor) in self.w_params:
                    w = self.w_params[str(li.tensor)].detach() * self.w_scale[li.tensor]
                    out[li.weight_index] = w.double().cpu().numpy()
            return out

        def bias_values(self):
            out = {}
            for li in self.layers:
                if li.bias is not None and str(li.bias) in self.b_params:
                    out[li.weight_index] = (
                        (self.b_params[str(li.bias)].detach().double() * self.b_unit[li.bias][1])
                        .cpu()
                        .numpy()
                    )
            return out

        def forward(self, x):
            """Returns (outputs: list of float tensors, head: logits-like tensor)."""
            env = {}
            t_in = graph.tensors[graph.inputs[0]]
            x = x.to(dtype).reshape(_batched(t_in.shape))
            env[t_in.index] = self._quant(x, t_in)
            head = None
            for k, op in enumerate(graph.ops):
                if k in shape_only:
                    continue
                y = self._op(op, env)
                tout = graph.tensors[op.outputs[0]]
                if op.outputs[0] == self.head[0]:
                    head = self.head[1](env, y)
                env[op.outputs[0]] = self._quant(y, tout) if op.name != "DEQUANTIZE" else y
            outs = [env[i] for i in graph.outputs]
            return outs, head if head is not None else outs[0]

        def _quant(self, y, t):
            if t.dtype in ("int8", "uint8", "int16") and t.scale.size:
                lo, hi = _qrange(t.dtype)
                return fq(y, float(t.scale[0]), float(t.zero_point[0]), lo, hi)
            return y

        def _in(self, env, ti):
            return env[ti] if ti in env else self.tensor(ti)

        def _op(self, op, env):
            name, o = op.name, op.options
            ins = op.inputs
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                x = env[ins[0]].permute(0, 3, 1, 2)
                w = self._in(env, ins[1])
                b = self._in(env, ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
                if name == "CONV_2D":
                    wk = w.permute(0, 3, 1, 2)  # [O, I, H, W]
                    groups = x.shape[1] // wk.shape[1]
                else:
                    wk = w.permute(3, 0, 1, 2)  # [C*m, 1, H, W]
                    groups = x.shape[1]
                x, stride, dilation = conv_window(x, wk.shape[2], wk.shape[3], o)
                y = F.conv2d(x, wk, b, stride, 0, dilation, groups)
                return _act(torch, y.permute(0, 2, 3, 1), o.get("activation"))
            if name == "FULLY_CONNECTED":
                w = self._in(env, ins[1])
                x = env[ins[0]].reshape(-1, w.shape[1])
                b = self._in(env, ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
                y = F.linear(x, w, b)
                tout = graph.tensors[op.outputs[0]]
                n = env[ins[0]].shape[0]
                y = (
                    y.reshape((n,) + tuple(tout.shape[1:]))
                    if tout.shape
                    and tout.shape[0] == 1
                    and int(np.prod(tout.shape)) * n == y.numel()
                    else y
                )
                return _act(torch, y, o.get("activation"))
            if name in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM"):
                a, b = self._in(env, ins[0]), self._in(env, ins[1])
                y = {
                    "ADD": torch.add,
                    "SUB": torch.sub,
                    "MUL": torch.mul,
                    "MAXIMUM": torch.maximum,
                    "MINIMUM": torch.minimum,
                }[name](a, b)
                return _act(torch, y, o.get("activation"))
            if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
                x = env[ins[0]].permute(0, 3, 1, 2)
                kh, kw = o["filter_h"], o["filter_w"]
                sh, sw = o["stride_h"], o["stride_w"]
                pads = (0, 0, 0, 0)
                if o.get("padding") == "SAME":
                    ph = _same_pad(x.shape[2], kh, sh, 1)
                    pw = _same_pad(x.shape[3], kw, sw, 1)
                    pads = (pw[0], pw[1], ph[0], ph[1])
                if name == "MAX_POOL_2D":
                    x = F.pad(x, pads, value=-float("inf")) if any(pads) else x
                    y = F.max_pool2d(x, (kh, kw), (sh, sw))
                else:
                    s = F.avg_pool2d(F.pad(x, pads), (kh, kw), (sh, sw))
                    ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
                    c = F.avg_pool2d(F.pad(ones, pads), (kh, kw), (sh, sw))
                    y = s / c
                return _act(torch, y.permute(0, 2, 3, 1), o.get("activation"))
            if name in ("MEAN", "REDUCE_MAX", "SUM"):
                x = env[ins[0]]
                axes = [int(a) % x.dim() for a in np.atleast_1d(graph.tensors[ins[1]].data)]
                keep = bool(o.get("keep_dims", False))
                if name == "MEAN":
                    return x.mean(dim=axes, keepdim=keep)
                if name == "SUM":
                    return x.sum(dim=axes, keepdim=keep)
                return torch.amax(x, dim=axes, keepdim=keep)
            if name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
                return env[ins[0]].reshape(_batched(graph.tensors[op.outputs[0]].shape))
            if name in ("QUANTIZE", "DEQUANTIZE"):
                return env[ins[0]]
            if name == "SOFTMAX":
                return torch.softmax(env[ins[0]] * o.get("beta", 1.0), dim=-1)
            if name == "LOGISTIC":
                return torch.sigmoid(env[ins[0]])
            if name == "TANH":
                return torch.tanh(env[ins[0]])
            if name == "RELU":
                return torch.relu(env[ins[0]])
            if name == "RELU6":
                return torch.clamp(env[ins[0]], 0, 6)
            if name == "LEAKY_RELU":  # alpha: the schema's default (0) if the file has none
                return F.leaky_relu(env[ins[0]], float(o.get("alpha", 0.0)))
            if name == "HARD_SWISH":
                x = env[ins[0]]
                return x * torch.clamp(x + 3, 0, 6) / 6
            if name in ("PAD", "PADV2"):
                x = env[ins[0]]
                p = np.asarray(graph.tensors[ins[1]].data).reshape(-1, 2)
                flat = []
                for before, after in p[::-1]:
                    flat += [int(before), int(after)]
                value = 0.0
                if name == "PADV2" and len(ins) > 2:
                    value = float(self._in(env, ins[2]).reshape(-1)[0])
                return F.pad(x, flat, value=value)
            if name == "CONCATENATION":
                xs = [self._in(env, i) for i in ins]
                return _act(torch, torch.cat(xs, dim=int(o.get("axis", -1))), o.get("activation"))
            raise LiftError(f"the finetuning lift does not support operator {name}")

    return Lifted()


def _channel_scale(t: Tensor) -> np.ndarray:
    return quant.channel_view(t.scale.astype(np.float64), t.shape, t.quantized_dimension)


def _act(torch, y, act):
    if act in (None, "NONE", "None"):
        return y
    if act == "RELU":
        return torch.relu(y)
    if act == "RELU6":
        return torch.clamp(y, 0, 6)
    if act == "RELU_N1_TO_1":
        return torch.clamp(y, -1, 1)
    if act == "TANH":
        return torch.tanh(y)
    raise LiftError(f"the finetuning lift does not support fused activation {act}")


def _head_tensor(graph: Graph):
    """(tensor index, fn(env, y) -> logits) of the model's pre-softmax / pre-sigmoid logits.

    Follows the first output back through DEQUANTIZE/QUANTIZE/RESHAPE; if it is made by
    SOFTMAX (or LOGISTIC), the logits are that operator's input; else the output itself.
    """
    producer = {o: op for op in graph.ops for o in op.outputs}
    ti = graph.outputs[0]
    while ti in producer and producer[ti].name in ("DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE"):
        ti = producer[ti].inputs[0]
    op = producer.get(ti)
    if op is not None and op.name in ("SOFTMAX", "LOGISTIC"):
        src = op.inputs[0]
        beta = op.options.get("beta", 1.0) if op.name == "SOFTMAX" else 1.0
        return ti, lambda env, y, src=src, beta=beta: env[src] * beta
    return -1, None


def lift_matches(model: ModelIR, inputs: list[np.ndarray], dtype=None) -> list[np.ndarray]:
    """Run the lift on int8 (or float) `inputs` and return per-sample dequantised outputs."""
    torch = require_torch()
    mod = build_lift(model, dtype=dtype or torch.float64)
    x = np.stack([np.asarray(a) for a in inputs])
    x = dequantize_input(model, x)
    with torch.no_grad():
        outs, _ = mod(torch.as_tensor(x))
    return [o.double().numpy() for o in outs]


def dequantize_input(model: ModelIR, x: np.ndarray) -> np.ndarray:
    """Model input values (as fed to TFLM) -> the float domain the lift takes."""
    info = model.inputs[0]
    return quant.dequantize(x, info.scale, info.zero_point)
