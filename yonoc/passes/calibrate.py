"""Calibration activations: what each compressible layer sees on the model's calibration inputs.

Output-aware encoding and bias correction (passes/output_aware.py) need, per weight tensor, the
second moment H = sum x x^T and the mean of the layer's input columns x (im2col rows in the
weight's own memory order) on real or generated inputs. They come from the original int8 model
run through the project's torch lift (finetune/lift.py, within 1 LSB of TFLM): the TFLM Python
interpreter exposes only the model's outputs, not its intermediate tensors.

Only the statistics are kept (C x C per layer, C = kernel taps x input channels; P x P per
input channel of a depthwise layer), never the activations, so memory stays bounded by the
largest layer whatever the number of inputs. Cost: one float32 forward pass of the lift per
input plus an im2col product per layer, about the time of 2-4 TFLM runs per input
(docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import YonocError

log = logging.getLogger("yonoc")

MATRIX, DEPTHWISE = "matrix", "depthwise"


@dataclass
class LayerStats:
    """Input statistics of one compressible layer, in the weight tensor's column order.

    matrix (FULLY_CONNECTED, CONV_2D): columns = one output row of the weight in file order
    (OHWI: kernel position-major, input channel minor); `hessian` [C, C], `mean` [C].
    depthwise: per input channel c the P kernel taps; `hessian` [Cin, P, P], `mean` [Cin, P];
    output channel k of the file's [1, H, W, Cin * mult] uses input channel k // mult.
    """

    kind: str
    hessian: np.ndarray  # float64, sum over rows (not normalised)
    mean: np.ndarray  # float64, mean input column (real domain; padding counts as 0)
    rows: int


def layer_stats(model, x: np.ndarray, batch: int = 8) -> dict:
    """{weight index: LayerStats} for `model` (ModelIR) on float inputs `x` [N, ...] (the
    model's float input domain, as the finetune hook takes them).

    Raises YonocError when the lift cannot run the model (unsupported operator, several
    inputs, torch missing): callers fall back to weight-space encoding.
    """
    try:
        import torch

        from ..finetune.graph import layer_map
        from ..finetune.lift import build_lift
    except ImportError:
        raise YonocError("calibration needs PyTorch (pip install 'yonoc[torch]')") from None
    if len(model.inputs) != 1:
        raise YonocError(f"{model.name}: calibration runs single-input models only")
    try:
        layers = layer_map(model)
        mod = build_lift(model)
    except YonocError:
        raise
    except Exception as e:  # ModelError is a YonocError; anything else: the lift's limits
        raise YonocError(f"{model.name}: the lift cannot run this model ({e})") from None
    by_op = {}
    for li in layers:
        by_op.setdefault(li.op_index, []).append(li.weight_index)
    acc = {}
    graph = mod.graph
    original_op = mod._op

    def recording_op(op, env):
        for wi in by_op.get(op.index, ()):
            w = graph.tensors[op.inputs[1]]
            _accumulate(torch, acc, wi, op, env[op.inputs[0]].detach(), tuple(w.shape))
        return original_op(op, env)

    mod._op = recording_op  # instance attribute: forward's self._op calls it
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same figures whatever the core count
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                mod(torch.as_tensor(np.asarray(x[i : i + batch], np.float32)))
    except YonocError:
        raise
    except Exception as e:
        raise YonocError(
            f"{model.name}: calibration pass failed ({type(e).__name__}: {e})"
        ) from None
    finally:
        torch.set_num_threads(threads)
    out = {}
    for wi, (kind, h, s, n) in acc.items():
        if n:
            out[wi] = LayerStats(kind, h, s / n, n)
    return out


def _accumulate(torch, acc, wi, op, x, wshape):
    import torch.nn.functional as F

    if op.name == "FULLY_CONNECTED":
        cols = x.reshape(-1, wshape[1]).double()
        _add(acc, wi, MATRIX, (cols.T @ cols).numpy(), cols.sum(0).numpy(), cols.shape[0])
        return
    from ..finetune.lift import conv_window

    kh, kw = wshape[1], wshape[2]
    xc, (sh, sw), (dh, dw) = conv_window(x.permute(0, 3, 1, 2).double(), kh, kw, op.options)
    n, c = xc.shape[0], xc.shape[1]
    cols = F.unfold(xc, (kh, kw), dilation=(dh, dw), stride=(sh, sw))  # [N, C*P, L]
    p = kh * kw
    cols = cols.reshape(n, c, p, -1)
    if op.name == "CONV_2D":
        if wshape[3] != c:
            return  # grouped convolution: left to weight-space encoding
        rows = cols.permute(0, 3, 2, 1).reshape(-1, p * c)  # OHWI column order
        _add(acc, wi, MATRIX, (rows.T @ rows).numpy(), rows.sum(0).numpy(), rows.shape[0])
        return
    # DEPTHWISE_CONV_2D: per input channel, its P taps
    per = cols.permute(1, 0, 3, 2).reshape(c, -1, p)  # [C, N*L, P]
    h = torch.einsum("cnp,cnq->cpq", per, per)
    _add(acc, wi, DEPTHWISE, h.numpy(), per.sum(1).numpy(), per.shape[1])


def _add(acc, wi, kind, h, s, n):
    if wi in acc:
        k, h0, s0, n0 = acc[wi]
        acc[wi] = (k, h0 + h, s0 + s, n0 + n)
    else:
        acc[wi] = (kind, h.astype(np.float64), s.astype(np.float64), n)
