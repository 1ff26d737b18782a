"""The reference finetune hook: train the layers in S of the fake-quantised torch lift.

Labelled data: cross-entropy on the logits (the input of a final SOFTMAX, else the output;
binary cross-entropy for a single LOGISTIC output). Unlabelled data: distillation from the
original model as teacher, KL divergence on temperature-softened logits for class outputs,
MSE for regression outputs. Adam with a cosine schedule; parameters are kept in int8-step
units (weights) and output-LSB units (biases) so one learning rate suits every layer. With
`patience` and validation data, training stops once the validation loss has not improved for
that many epochs and the best epoch's weights are returned (a long run on a small training
set otherwise overfits the few layers in S).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import YonocError
from . import FinetuneData, FinetuneResult
from .lift import build_lift, require_torch

log = logging.getLogger("yonoc")


class TorchFinetune:
    """Callable hook object (see `yonoc.finetune.FinetuneHook`)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def __call__(self, model, trainable, weights, data: FinetuneData) -> FinetuneResult:
        torch = require_torch()
        if self.threads:
            torch.set_num_threads(self.threads)
        torch.manual_seed(data.seed)
        bias_layers = (
            ()
            if not data.train_biases
            else range(len(model.weights))
            if data.frozen_biases
            else trainable
        )
        student = build_lift(
            model,
            weights=weights,
            biases=dict(data.biases),
            trainable=trainable,
            bias_trainable=bias_layers,
            coded=data.coded,
        )
        params = [p for p in student.parameters() if p.requires_grad]
        if not params:
            return FinetuneResult({}, {})
        device = resolve_device(torch, data.device)
        student.to_device(device)
        x = torch.as_tensor(np.asarray(data.x, np.float32), device=device)
        n = x.shape[0]
        loss_kind = data.loss
        teacher = None
        classy = student.head is not None and student.head[0] >= 0
        soft = None  # the teacher's logits, for "ce+kl" (labels and distillation)
        if data.y is not None and loss_kind in ("auto", "ce", "bce", "ce+kl"):
            target = torch.as_tensor(np.asarray(data.y, np.int64), device=device)
            if loss_kind == "auto":
                loss_kind = "ce"
            if loss_kind == "ce+kl":
                teacher = build_lift(model).to_device(device)
                soft = _teacher_logits(torch, teacher, x)
                if soft.shape[1] < 2:  # one output: nothing to distil beyond the label
                    loss_kind, soft = "ce", None
        else:  # no labels, or distillation asked for: the original model is the teacher
            teacher = build_lift(model).to_device(device)
            target = _teacher_logits(torch, teacher, x)
            if loss_kind in ("auto", "ce+kl"):
                loss_kind = "kl" if classy and target.shape[1] > 1 else "mse"
        val = None
        if data.patience and data.x_val is not None and len(data.x_val):
            xv = torch.as_tensor(np.asarray(data.x_val, np.float32), device=device)
            labelled = data.y is not None and data.y_val is not None
            if labelled and loss_kind in ("ce", "bce", "ce+kl"):
                tv = torch.as_tensor(np.asarray(data.y_val, np.int64), device=device)
            else:
                with torch.no_grad():
                    teacher = teacher or build_lift(model).to_device(device)
                    tv = torch.cat(
                        [
                            teacher(xv[i : i + 256])[1].reshape(min(256, len(xv) - i), -1)
                            for i in range(0, len(xv), 256)
                        ]
                    )
            val = (xv, tv)
        best = (float("inf"), None, None)
        stale = 0
        opt = torch.optim.Adam(params, lr=data.lr)
        steps = max(1, data.epochs * -(-n // data.batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        gen = torch.Generator().manual_seed(data.seed)
        for epoch in range(data.epochs):
            total = 0.0
            perm = torch.randperm(n, generator=gen).to(device)
            for i in range(0, n, data.batch_size):
                idx = perm[i : i + data.batch_size]
                _, head = student(x[idx])
                head = head.reshape(len(idx), -1)
                loss = _loss(torch, loss_kind, head, target[idx], data.temperature)
                if soft is not None:
                    loss = loss + _loss(torch, "kl", head, soft[idx], data.temperature)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            log.info(
                "%s: finetune S=%s epoch %d/%d, %s loss %.4g",
                getattr(model, "name", "?"),
                list(trainable),
                epoch + 1,
                data.epochs,
                loss_kind,
                total / n,
            )
            if val is not None:
                with torch.no_grad():
                    xv, tv = val
                    vl = sum(
                        float(
                            _loss(
                                torch,
                                loss_kind,
                                student(xv[i : i + 256])[1].reshape(min(256, len(xv) - i), -1),
                                tv[i : i + 256],
                                data.temperature,
                            )
                        )
                        * min(256, len(xv) - i)
                        for i in range(0, len(xv), 256)
                    ) / len(xv)
                if vl < best[0] - 1e-9:
                    best = (
                        vl,
                        student.weight_values(),
                        student.bias_values() if data.train_biases else {},
                    )
                    stale = 0
                else:
                    stale += 1
                    if stale >= data.patience:
                        log.info(
                            "%s: early stop after epoch %d (val loss %.4g, best %.4g)",
                            getattr(model, "name", "?"),
                            epoch + 1,
                            vl,
                            best[0],
                        )
                        break
        if best[1] is not None:
            return FinetuneResult(best[1], best[2])
        return FinetuneResult(
            student.weight_values(), student.bias_values() if data.train_biases else {}
        )


def resolve_device(torch, name: str):
    """The torch device for `Training.device`: "auto" is cuda when torch sees one, else cpu;
    asking for cuda without one is a one-line error, not a torch traceback."""
    name = name or "cpu"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise YonocError(
                f"finetune device {name}: torch sees no CUDA device here "
                '(use device = "cpu" or "auto")'
            )
        idx = int(name.partition(":")[2] or 0)
        if idx >= torch.cuda.device_count():
            raise YonocError(
                f"finetune device {name}: only {torch.cuda.device_count()} CUDA device(s)"
            )
    elif name != "cpu":
        raise YonocError(f"finetune device {name!r}: expected cpu, cuda, cuda:N or auto")
    return torch.device(name)


def _teacher_logits(torch, teacher, x):
    """The original model's head on every input, in batches of 256 (no gradient)."""
    n = x.shape[0]
    with torch.no_grad():
        return torch.cat(
            [teacher(x[i : i + 256])[1].reshape(min(256, n - i), -1) for i in range(0, n, 256)]
        )


def _loss(torch, kind, head, target, temperature):
    import torch.nn.functional as F

    if kind in ("ce", "ce+kl"):  # ce+kl: the label term (the caller adds the KL term)
        if head.shape[1] == 1:
            return F.binary_cross_entropy_with_logits(head[:, 0], target.to(head.dtype))
        return F.cross_entropy(head, target)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(head[:, 0], target.to(head.dtype))
    if kind == "kl":
        t = temperature
        return (
            F.kl_div(
                F.log_softmax(head / t, 1),
                F.log_softmax(target / t, 1),
                log_target=True,
                reduction="batchmean",
            )
            * t
            * t
        )
    if kind == "mse":
        return F.mse_loss(head, target)
    raise YonocError(f"unknown finetuning loss {kind!r} (auto, ce, bce, kl, mse)")
