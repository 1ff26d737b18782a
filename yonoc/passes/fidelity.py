"""Data-free fidelity control: decide, per model, which tensors get a finer rate or stay raw.

Without training data the only ground truth is the original model itself, so every decision is
checked by running original and rebuilt models in the TFLM interpreter on sample inputs
(user-supplied, else generated). The target is an output SNR (dequantised outputs, summed over
all samples) and, with real samples, top-1 agreement.

Strategies:
- `sensitivity` (default): measure once, in TFLM, how much output noise each tensor causes at the
  coarsest rate with every other tensor raw; estimate finer rates from their weight error; then
  allocate rates greedily by noise removed per byte spent until the summed noise meets a budget,
  and search the budget so the *measured* SNR meets the target.
- `eq3`: the paper's heuristic (eq. 3) as a data-free fallback: tensors sorted by squared weight
  error per parameter, the worst kept raw, the rest at the coarsest rate; the number kept raw is
  the smallest that meets the target (binary search).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .. import interpreter
from ..errors import FidelityError
from ..ir import ModelIR
from .encode import RAW, rebuilt_model

log = logging.getLogger("yonoc")

PROBE_SAMPLES = 8  # inputs of a sensitivity probe (and of coarsen's quick check)


NEAR_CONSTANT_DB = 20.0  # output energy / energy of its variation over the samples
# unlabelled distillation of a classifier on real inputs (em.py): the output SNR floor beside
# the top-1 agreement criterion, a guard against degenerate outputs whose argmax survives
# (chosen from measurement: docs/benchmarks.md, "Calibration-only")
AGREEMENT_SNR_FLOOR_DB = 10.0


@dataclass(frozen=True)
class FidelityTarget:
    snr_db: float = 20.0
    min_agreement: float = 0.99  # top-1, on real (user-supplied) samples of softmax classifiers


def distillation_target(
    target: FidelityTarget, epsilon: float, real: int, classifier: bool
) -> FidelityTarget:
    """The target an unlabelled EM build (distillation on `real` real inputs) is judged by.

    A classifier judged on real inputs: top-1 agreement with the original >= 1 - epsilon/100
    (at most epsilon pt of the held-back inputs change class: the tolerance a labelled build
    gets on accuracy) and output SNR >= AGREEMENT_SNR_FLOOR_DB. The build's SNR target (20 dB)
    is far stricter than that: four examples ended at 15.6-17.2 dB with accuracy unchanged. Other
    outputs (regression, autoencoders), or no real inputs: the build's target unchanged."""
    if not (real and classifier):
        return target
    floor = min(AGREEMENT_SNR_FLOOR_DB, target.snr_db)
    return FidelityTarget(snr_db=floor, min_agreement=1.0 - epsilon / 100.0)


@dataclass
class Measurement:
    snr_db: float
    agreement: float | None  # None when no real samples or no class outputs
    agreement_generated: float | None = None  # top-1 on generated inputs: reported, not a target
    measurable: bool = True  # False: reference outputs constant over the samples
    # near-constant reference outputs: SNR of the input-dependent part (see Evaluator.spread)
    snr_varying_db: float | None = None

    def meets(self, target: FidelityTarget) -> bool:
        if not self.measurable:
            return False
        ok = self.snr_db >= target.snr_db
        if self.snr_varying_db is not None:
            ok = ok and self.snr_varying_db >= target.snr_db
        if self.agreement is not None:
            ok = ok and self.agreement >= target.min_agreement
        return ok


class RunOnce:
    """Results of runs of a candidate model, by the candidate's bytes (and any further key):
    a search meets the same candidate again (a raised held-out target re-probes every tensor;
    EM's re-coding and fallback rebuild bytes already measured), and each TFLM run over a
    sample set costs up to seconds. `runs`: distinct runs made; `seconds`: time spent in them."""

    def __init__(self):
        self.results: dict = {}
        self.runs = 0
        self.seconds = 0.0

    def __call__(self, data: bytes, run: Callable[[], object], *key):
        k = (hashlib.sha256(data).digest(), *key)
        if k not in self.results:
            self.runs += 1
            t0 = time.perf_counter()
            self.results[k] = run()
            self.seconds += time.perf_counter() - t0
        return self.results[k]


class Evaluator:
    """Compares a candidate model's outputs with the original's on fixed samples."""

    def __init__(self, model: ModelIR, samples: list, real: int = 0):
        self.model = model
        self.samples = samples
        self.real = real  # the first `real` samples are real inputs
        self.n_out = max(1, len(model.outputs))
        self.reference = self._outputs(model.data, samples)
        self.signal = sum(float(np.sum(y * y)) for y in self.reference)
        self.mean = np.mean(self.reference, axis=0) if self.reference else 0.0
        # energy of what varies with the input: the noise of a model that ignores its input
        self.spread = sum(float(np.sum((y - self.mean) ** 2)) for y in self.reference)
        self._once = RunOnce()

    @property
    def evaluations(self) -> int:
        """TFLM runs of candidates (a candidate measured again is not run again)."""
        return self._once.runs

    def near_constant(self) -> bool:
        """True when the reference outputs vary over the samples by less than 1 % of their
        energy: a model ignoring its input (always outputting their mean) would reach 20 dB,
        so the plain output SNR proves little. Such models must also meet the target on the
        input-dependent part of their outputs (Measurement.snr_varying_db). With constant
        outputs (spread 0) nothing can be measured at all: `choose` keeps every weight raw."""
        return snr_db(self.signal, self.spread) >= NEAR_CONSTANT_DB

    def _outputs(self, data: bytes, samples: list) -> list:
        raw = interpreter.run(data, samples, self.n_out, self.model.name)
        # one flat float vector per sample: all outputs dequantised
        return [
            np.concatenate(
                [
                    interpreter.dequantize(o, info).reshape(-1)
                    for o, info in zip(outs, self.model.outputs)
                ]
            )
            for outs in raw
        ]

    def noise(self, data: bytes, count: int | None = None) -> float:
        n = count or len(self.samples)

        def run():
            outs = self._outputs(data, self.samples[:n])
            return sum(float(np.sum((y - r) ** 2)) for y, r in zip(outs, self.reference[:n]))

        return self._once(data, run, "noise", n)

    def quick_snr_db(self, data: bytes, count: int) -> float:
        """Output SNR on the first `count` samples only, against their own energy (of their
        varying part when the outputs are near-constant, as `measure` judges those)."""
        base = self.mean if self.near_constant() else 0.0
        signal = sum(float(np.sum((y - base) ** 2)) for y in self.reference[:count])
        return snr_db(signal, self.noise(data, count))

    def measure(self, data: bytes) -> Measurement:
        m = self._once(data, lambda: self._measure(data), "measure")
        return replace(m)  # a copy: callers may mark it (choose: measurable)

    def _measure(self, data: bytes) -> Measurement:
        outs = self._outputs(data, self.samples)
        noise = sum(float(np.sum((y - r) ** 2)) for y, r in zip(outs, self.reference))
        snr = snr_db(self.signal, noise)
        agreement, generated = None, None
        if self.model.classifier:
            k = int(np.prod(self.model.outputs[0].shape))
            same = [int(np.argmax(y[:k]) == np.argmax(r[:k])) for y, r in zip(outs, self.reference)]
            if self.real:
                agreement = float(np.mean(same[: self.real]))
            if len(same) > self.real:
                generated = float(np.mean(same[self.real :]))
        varying = snr_db(self.spread, noise) if self.near_constant() else None
        return Measurement(snr, agreement, generated, self.spread > 0, varying)


def snr_db(signal: float, noise: float) -> float:
    if noise <= 0:
        return math.inf
    if signal <= 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _worth_coding(e) -> bool:
    """A tensor whose raw bytes cost no more than its coarsest codes (zero runs: encode.py
    raw_bytes) stays raw."""
    return bool(e.rates) and e.bytes_at(0) < e.bytes_at(RAW)


def _bytes(encodings, choices) -> int:
    return sum(e.bytes_at(c) for e, c in zip(encodings, choices))


def choose(
    model: ModelIR,
    encodings: list,
    evaluator: Evaluator,
    target: FidelityTarget,
    strategy: str = "sensitivity",
    erase_names: bool = True,
    probe: dict | None = None,
    patches=None,
):
    """Per-tensor choices meeting the target with the fewest bytes found. Returns
    (choices, Measurement). `probe`, if given, receives {tensor index: output SNR (dB) with
    only that tensor coded at the coarsest rate} for the tensors the sensitivity probe
    measured (the build notes keep them). `patches(choices)`, if given, gives the byte
    patches of a choice (bias correction of the coded layers: passes/output_aware.py)."""
    n = len(encodings)
    coarse = [0 if _worth_coding(e) else RAW for e in encodings]

    def build(choices):
        return rebuilt_model(
            model, encodings, choices, erase_names, patches(choices) if patches else None
        )

    if n and evaluator.spread <= 0:
        # constant outputs on every sample: no measurement can justify coding a weight
        m = evaluator.measure(build([RAW] * n))
        m.measurable = False
        return [RAW] * n, m
    m = evaluator.measure(build(coarse))
    if m.meets(target) or n == 0:
        return coarse, m
    all_raw = [RAW] * n
    m_raw = evaluator.measure(build(all_raw))
    if not m_raw.meets(target):
        raise FidelityError(
            f"{model.name}: even with every weight raw the rebuilt model misses "
            f"the fidelity target (SNR {m_raw.snr_db:.1f} dB)"
        )
    if strategy == "eq3":
        return _eq3(encodings, evaluator, target, build, m_raw)
    return _sensitivity(encodings, evaluator, target, build, m_raw, probe_out=probe)


def _eq3(encodings, evaluator, target, build, m_raw):
    order = sorted(
        range(len(encodings)), key=lambda i: -encodings[i].error_at(0) / encodings[i].tensor.size
    )

    def choices_for(k):
        c = [0] * len(encodings)
        for i in order[:k]:
            c[i] = RAW
        return c

    lo, hi, best = 0, len(order), m_raw  # lo fails, hi passes
    while hi - lo > 1:
        mid = (lo + hi) // 2
        m = evaluator.measure(build(choices_for(mid)))
        if m.meets(target):
            hi, best = mid, m
        else:
            lo = mid
    return choices_for(hi), best


def _sensitivity(
    encodings, evaluator, target, build, m_raw, probe_samples=PROBE_SAMPLES, probe_out=None
):
    n = len(encodings)
    # output noise each tensor causes alone at the coarsest rate (others raw)
    probe = min(probe_samples, len(evaluator.samples))
    signal_probe = sum(float(np.sum(y * y)) for y in evaluator.reference[:probe])
    scale = evaluator.signal / signal_probe if signal_probe > 0 else 1.0
    noise0 = []
    for i, e in enumerate(encodings):
        if not _worth_coding(e):
            noise0.append(0.0)
            continue
        c = [RAW] * n
        c[i] = 0
        noise0.append(evaluator.noise(build(c), probe) * scale)
        log.info("%s: sensitivity probe %d/%d", evaluator.model.name, i + 1, n)
        if probe_out is not None:
            probe_out[i] = snr_db(evaluator.signal, noise0[-1])

    def est(i, choice):
        e = encodings[i]
        if choice == RAW:
            return 0.0
        ratio = e.error_at(choice) / e.error_at(0) if e.error_at(0) > 0 else 0.0
        return noise0[i] * ratio

    def allocate(budget):
        c = [0 if _worth_coding(e) else RAW for e in encodings]
        total = sum(est(i, c[i]) for i in range(n))
        while total > budget:
            best, best_gain = None, -1.0
            for i, e in enumerate(encodings):
                if c[i] == RAW:
                    continue
                # any finer rate (the next may not be the best buy: e.g. 4 -> 6 bpw) or raw
                for nxt in [*range(c[i] + 1, len(e.rates)), RAW]:
                    cost = e.bytes_at(nxt) - e.bytes_at(c[i])
                    gain = (est(i, c[i]) - est(i, nxt)) / max(cost, 1)
                    if gain > best_gain:
                        best, best_gain = (i, nxt), gain
            if best is None:
                break
            i, nxt = best
            total += est(i, nxt) - est(i, c[i])
            c[i] = nxt
        return c

    # near-constant outputs: the noise budget is set by their varying part
    energy = evaluator.spread if evaluator.near_constant() else evaluator.signal
    target_noise = energy / 10 ** (target.snr_db / 10)
    tried = {}

    def attempt(factor):
        c = allocate(target_noise * factor)
        key = tuple(c)
        if key not in tried:
            tried[key] = evaluator.measure(build(c))
            log.info(
                "%s: fidelity search: %d weight bytes -> output SNR %.1f dB",
                evaluator.model.name,
                _bytes(encodings, c),
                tried[key].snr_db,
            )
        return c, tried[key]

    # search the budget factor (log scale) for the cheapest allocation that measures as passing
    best = ([RAW] * n, m_raw)
    lo, hi = None, None  # lo: a passing factor, hi: a failing factor
    factor = 1.0
    for _ in range(6):
        c, m = attempt(factor)
        if m.meets(target):
            if _bytes(encodings, c) < _bytes(encodings, best[0]):
                best = (c, m)
            lo = factor
            if hi is not None:
                break
            factor *= 4
        else:
            hi = factor
            if lo is not None:
                break
            factor /= 4
    if lo is not None and hi is not None:
        a, b = math.log(lo), math.log(hi)
        for _ in range(3):
            mid = math.exp((a + b) / 2)
            c, m = attempt(mid)
            if m.meets(target):
                if _bytes(encodings, c) < _bytes(encodings, best[0]):
                    best = (c, m)
                a = math.log(mid)
            else:
                b = math.log(mid)
    return best


COARSEN_TRIES = 8  # measured steps after the search, at most one per tensor


def coarsen(encodings, evaluator, target, build, best, tries=COARSEN_TRIES):
    """The search's allocation rests on summed single-tensor noise estimates, which are rough
    (a step of the budget moves several tensors at once); from it, the tensors with the
    largest savings are each tried one step coarser (raw to its finest rate, a rate to the
    next coarser one) and kept there if the model, measured, still meets the target.
    `best`: (choices, Measurement) -> the same, never more bytes."""
    c, m = list(best[0]), best[1]

    def coarser(i):
        e = encodings[i]
        if c[i] == RAW:
            return len(e.rates) - 1 if _worth_coding(e) else None
        return c[i] - 1 if c[i] > 0 else None

    steps = [i for i in range(len(c)) if coarser(i) is not None]
    steps.sort(key=lambda i: encodings[i].bytes_at(coarser(i)) - encodings[i].bytes_at(c[i]))
    before, kept = _bytes(encodings, c), 0
    quick = min(PROBE_SAMPLES, len(evaluator.samples))
    for i in steps[:tries]:
        trial = list(c)
        trial[i] = coarser(i)
        blob = build(trial)
        # a quarter of the cost first: a step whose noise on the probe's samples is already
        # twice the target's (3 dB) is not measured on all of them
        if (
            quick < len(evaluator.samples)
            and evaluator.quick_snr_db(blob, quick) < target.snr_db - 3.0
        ):
            continue
        mt = evaluator.measure(blob)
        if mt.meets(target):
            c, m, kept = trial, mt, kept + 1
    log.info(
        "%s: coarsen: %d of %d steps kept, %d -> %d weight bytes",
        evaluator.model.name,
        kept,
        min(tries, len(steps)),
        before,
        _bytes(encodings, c),
    )
    return c, m
