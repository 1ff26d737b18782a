"""Helpers of the EM pass (passes/em.py): TFLM accuracy and its cache, first/last layers, the
test report and the per-step log line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .. import interpreter
from ..ir import ModelIR
from ..progress import PROGRESS
from ..samples import model_inputs
from .encode import RAW, rebuilt_model
from .fidelity import Evaluator, RunOnce
from .fidelity import choose as fidelity_choose

log = logging.getLogger("yonoc")


def accuracy(model: ModelIR, data: bytes, x: list, y: np.ndarray) -> float:
    """Top-1 accuracy (%) of model bytes `data` in TFLM; single-output binary: > 0.5."""
    outs = interpreter.run(data, x, 1, model.name)
    info = model.outputs[0]
    preds = []
    for o in outs:
        v = interpreter.dequantize(o[0], info).reshape(-1)
        preds.append(
            int(np.argmax(v)) if v.size > 1 else int(v[0] > (0.5 if _is_prob(info) else 0.0))
        )
    return 100.0 * float(np.mean(np.asarray(preds) == np.asarray(y).reshape(-1)))


def _is_prob(info) -> bool:
    return info.dtype in ("int8", "uint8") and abs(info.scale - 1 / 256) < 1e-9


def first_last(layers) -> list:
    if not layers:
        return []
    order = sorted(range(len(layers)), key=lambda i: layers[i].op_index)
    return sorted({order[0], order[-1]})


def report_test(model, data, out, erase_names: bool):
    """Accuracy of the original and of the chosen rebuild on the held-out test data: reported
    only, after every decision is made."""
    if data.reports_test:
        x = model_inputs(model, data.x_test)
        blob = rebuilt_model(model, out.encodings, out.choices, erase_names, out.patches)
        out.test_original = accuracy(model, model.data, x, data.y_test)
        out.test_final = accuracy(model, blob, x, data.y_test)
    return out


def log_step(model, step, metric):
    """One line per EM step at the default verbosity: a step can take a minute (progress)."""
    unit = "%" if metric == "accuracy" else " dB"
    log.log(
        PROGRESS,
        "%s: EM S=%s -> %.2f%s%s",
        model.name,
        step.trainable,
        step.score,
        unit,
        " (target met)" if step.passed else "",
    )


class EvalCache:
    """The EM pass's judgement of rebuilt model bytes, made once per distinct blob
    (fidelity.RunOnce): the re-coding step and the fallback often rebuild bytes already
    judged (same codes, same patches)."""

    def __init__(self, judge: Callable[[bytes], tuple]):
        self.judge = judge
        self.once = RunOnce()

    def __call__(self, blob: bytes) -> tuple:
        return self.once(blob, lambda: self.judge(blob))

    @property
    def runs(self) -> int:
        return self.once.runs

    @property
    def seconds(self) -> float:  # spent in `judge`
        return self.once.seconds


def data_free_fallback(model, encodings, samples, target, erase_names, evaluate):
    """Algorithm 1 missed its target: the data-free allocation (rates + raw, judged on the
    model's own inputs in TFLM) if `evaluate` says it meets the target, else every layer raw
    with its original values (never worse than the original). -> choices, patches, score, ok
    """
    choices, _ = fidelity_choose(
        model,
        encodings,
        Evaluator(model, samples, len(samples)),
        target,
        "sensitivity",
        erase_names,
    )
    score, ok = evaluate(rebuilt_model(model, encodings, choices, erase_names, {}))
    if ok:
        log.warning(
            "%s: EM finetuning did not reach the target; using the data-free allocation, "
            "which does",
            model.name,
        )
    else:
        choices = [RAW] * len(encodings)
        score, ok = evaluate(rebuilt_model(model, encodings, choices, erase_names, {}))
        log.warning("%s: EM finetuning did not reach the target; kept raw", model.name)
    return choices, {}, score, ok


def finer_start_left(encodings) -> bool:
    """Whether some coded tensor has a rate finer than its coarsest (a `finer_start` retry)."""
    return any(len(e.rates) > 1 for e in encodings)


def finer_start(encodings) -> list:
    """The encodings with the coarsest start dropped (rates[1:]) where it is the coarsest of
    all and a finer rate is left: Algorithm 1 run again one step finer. Only the coarsest: with
    1 bpw in group A alone, kws_dscnn's retry otherwise moved its group B layers from 2 to
    4 bpw too (2.04x instead of 3.86x)."""
    starts = [e.rates[0].book.bits_per_weight for e in encodings if len(e.rates) > 1]
    coarsest = min(starts, default=None)
    return [
        replace(e, rates=list(e.rates[1:]))
        if len(e.rates) > 1 and e.rates[0].book.bits_per_weight == coarsest
        else e
        for e in encodings
    ]


def start_levels(encodings, start: int) -> tuple[list, list[int]]:
    """The encodings as start `start` sees them (the coarsest start of all dropped `start`
    times) and each tensor's start level in its full ladder."""
    starts = encodings
    for _ in range(start):
        starts = finer_start(starts)
    return starts, [len(e.rates) - len(s.rates) for e, s in zip(encodings, starts)]


def start_bytes(encodings) -> float:
    """Weight bytes of a start: every coded tensor at its coarsest rate (rate 0)."""
    return sum(
        e.tensor.size * (e.rates[0].book.bits_per_weight / 8 if e.rates else 1.0) for e in encodings
    )


def start_gain(encodings) -> float:
    """What this start can save against the next finer one, as a fraction of that one's
    weight bytes (0 without a finer start)."""
    if not finer_start_left(encodings):
        return 0.0
    finer = start_bytes(finer_start(encodings))
    return (finer - start_bytes(encodings)) / max(finer, 1.0)


def log_skip(model, start: int, gain: float) -> None:
    """Start rate `start` is not run: it could save only `gain` of the next start's bytes."""
    log.info(
        "%s: EM start rate %d skipped: it could save only %.1f %% of the next start's weight bytes",
        model.name,
        start,
        100 * gain,
    )


def log_retry(model, start: int, spent: dict) -> None:
    """A run missed from start rate `start`: what it cost before the retry from the next."""
    log.info(
        "%s: EM missed from start rate %d (%d finetune calls %.1f s, %d TFLM evaluations "
        "%.1f s); again from start rate %d",
        model.name,
        start,
        spent["train_calls"],
        spent["train_s"],
        spent["evals"],
        spent["eval_s"],
        start + 1,
    )
