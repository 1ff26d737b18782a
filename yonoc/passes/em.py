"""Algorithm 1 of the YONO paper: EM finetuning with the eq. 3 layer heuristic.

For one model with training data, given its codebook encodings (coarsest rate, frozen
codebooks):

1. reconstruct every layer from the codebooks; finetune the first and last layer (S) with
   the rest frozen; compare the original's and the rebuilt model's accuracy on the test data
   (in TFLM, int8); done if within epsilon;
2. otherwise loop: E-step: re-assign the codes of the layers not in S against the frozen
   codebooks (nearest codeword to the original weights, or to shadow weights trained
   through the codebook with `reassign="finetuned"`); M-step: rebuild those layers from
   their codes and finetune the layers in S; evaluate; stop if within epsilon; else, with the
   heuristic (mode `yono`), add to S the layer with the largest ||W - What||^2 / N (eq. 3).
   The loop ends when within epsilon or when every layer has been tried.

Layers in S are stored raw: their finetuned float weights are re-quantised to int8 with the
tensor's own per-channel scales (clipped to [-127, 127]) and their biases to int32 (scale =
input scale x weight scale), written into the rebuilt model as byte patches; with
`frozen_biases` the PQ-coded layers' biases are finetuned and patched too. Codewords never
change. A "layer" is a compressible weight tensor (`ModelIR.weights`); first/last are the ones
consumed by the lowest/highest operator index.

Without labels (`y` None) the hook distils from the original model and the loop targets
fidelity (the build's SNR/agreement target, measured in TFLM) instead of accuracy.

If the loop ends without meeting the target, the model gets the data-free allocation if that
meets it, else it is kept as it was (every layer raw, original weights and biases): never worse
than the original.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from .. import interpreter
from ..finetune import CodedLayer, FinetuneData, FinetuneHook, Training, call_hook, load_hook
from ..finetune.graph import layer_map
from ..ir import ModelIR
from ..samples import (  # noqa: F401  (DataSpec, load_npz: re-exported for specs, benches)
    DataSpec,
    ModelData,
    float_inputs,
    load_data,
    load_npz,
    model_inputs,
)
from .encode import RAW, TensorEncodings, channel_scales, rebuilt_model
from .fidelity import Evaluator, FidelityTarget
from .fidelity import choose as fidelity_choose

if TYPE_CHECKING:
    from ..options import BuildOptions

log = logging.getLogger("yonoc")


@dataclass(frozen=True)
class EMOptions(Training):
    """Knobs of the EM pass (build spec [build] table / CLI); training knobs and their
    defaults are `finetune.Training`'s, shared with every hook call."""

    epsilon: float = 1.0  # allowed accuracy loss, percentage points
    heuristic: bool = True  # eq. 3 layer addition (mode yono); False: pq-mopt
    # E-step target: "original" weights (Algorithm 1's line 13 read literally: the codes never
    # move after the first assignment) or "finetuned" shadow weights, trained through their
    # codewords with S frozen (the paper's prose: indices re-assigned on the updated weights)
    # (measured on the examples: no gain over "original" at higher cost, so not the default)
    reassign: str = "original"
    init: str = "original"  # S layers start from the "original" or "reconstructed" weights
    max_train: int = 20000  # training examples used per finetune call (seeded subset)
    max_iterations: int | None = None  # cap on loop iterations (default L - 2, Algorithm 1)
    precheck: bool = True  # skip finetuning when the plain reconstruction already passes
    fallback_raw: bool = True  # target missed at the end: keep the model as it was


@dataclass
class EMStep:
    trainable: list[int]  # layer indices in S
    score: float  # accuracy (%) or SNR (dB) after this step
    passed: bool


@dataclass
class EMOutcome:
    encodings: list[TensorEncodings]  # the input encodings with the E-step's updated codes
    choices: list[int]
    patches: dict[int, bytes]  # {file offset: bytes}
    metric: str  # "accuracy" or "fidelity"
    original: float | None  # original accuracy (%), accuracy mode
    final: float | None  # rebuilt accuracy (%) or SNR (dB)
    passed: bool
    trainable: list[int]  # final S
    steps: list[EMStep] = field(default_factory=list)
    fell_back: bool = False  # loop ended without meeting the target: model kept original


def accuracy(model: ModelIR, data: bytes, x: list, y: np.ndarray) -> float:
    """Top-1 accuracy (%) of model bytes `data` in TFLM; single-output binary: > 0.5."""
    outs = interpreter.run(data, x, 1, model.name)
    info = model.outputs[0]
    preds = []
    for o in outs:
        v = interpreter.dequantize(o[0], info).reshape(-1)
        preds.append(int(np.argmax(v)) if v.size > 1 else int(v[0] > (0.5 if _is_prob(info)
                                                                        else 0.0)))
    return 100.0 * float(np.mean(np.asarray(preds) == np.asarray(y).reshape(-1)))


def _is_prob(info) -> bool:
    return info.dtype in ("int8", "uint8") and abs(info.scale - 1 / 256) < 1e-9


def first_last(layers) -> list:
    if not layers:
        return []
    order = sorted(range(len(layers)), key=lambda i: layers[i].op_index)
    return sorted({order[0], order[-1]})


def run(model: ModelIR, encodings: list[TensorEncodings], data: ModelData, options: EMOptions,
        hook: FinetuneHook | str | None = None, target: FidelityTarget | None = None,
        erase_names: bool = True, evaluator: Evaluator | None = None,
        progress: Callable[[EMStep], None] | None = None,
        biases0: dict | None = None) -> EMOutcome:
    """Algorithm 1 for one model. `hook`: a finetune hook or its name (default: torch).

    `encodings` are left as they are: the E-step's codes come back in `EMOutcome.encodings`.
    `biases0`: {layer index: float real-domain bias} to start from (bias correction of the
    coded layers, passes/output_aware.py); patched like finetuned biases.
    """
    hook = hook if callable(hook) else load_hook(hook)
    n = len(encodings)
    encodings = [replace(e, rates=list(e.rates)) for e in encodings]  # rates[0] gets new codes
    layers = layer_map(model)
    eps = options.epsilon if data.epsilon is None else data.epsilon
    target = target or FidelityTarget()

    # the evaluation: accuracy on labelled test data, else fidelity on the test inputs
    x_test = model_inputs(model, data.x_test)
    if data.labelled:
        metric = "accuracy"
        acc_orig = accuracy(model, model.data, x_test, data.y_test)

        def evaluate(blob):
            a = accuracy(model, blob, x_test, data.y_test)
            return a, acc_orig - eps <= a + 1e-9
    else:
        metric = "fidelity"
        acc_orig = None
        ev = Evaluator(model, x_test, len(x_test))

        def evaluate(blob):
            m = ev.measure(blob)
            return m.snr_db, m.meets(target)

    # training set (a seeded subset if large), in the model's float input domain
    x_tr, y_tr = float_inputs(model, data.x_train), data.y_train
    if len(x_tr) > options.max_train:
        keep = np.sort(np.random.default_rng(options.seed).choice(len(x_tr), options.max_train,
                                                                  replace=False))
        x_tr = x_tr[keep]
        y_tr = None if y_tr is None else np.asarray(y_tr)[keep]

    # per-layer state: codes (coarsest rate), reconstructed and current float weights
    books = [e.rates[0].book if e.rates else None for e in encodings]
    scales = [channel_scales(e.tensor) for e in encodings]
    originals = [e.tensor.values.astype(np.float64) * scales[i]
                 for i, e in enumerate(encodings)]
    codes = [e.rates[0].indices if e.rates else None for e in encodings]

    def reconstruct(i):
        e = encodings[i]
        if books[i] is None:
            return e.tensor.values.copy()
        return e.tensor.from_vector_order(books[i].decode(codes[i], e.tensor.size))

    shadow = {}  # E-step targets trained through the codebook (file order, flat); else original
    current = {}  # finetuned float weights of layers in S (file order, flat)
    biases = dict(biases0 or {})  # finetuned (or corrected) float biases

    def float_weights():
        out = []
        for i, e in enumerate(encodings):
            w = current[i] if i in current else reconstruct(i).astype(np.float64) * scales[i]
            out.append(w.reshape(e.tensor.shape))
        return out

    def finetune(trainable, coded=()):
        """M-step: train the layers in `trainable` raw. E-step (`coded`): train the shadow
        weights of the layers in `coded` through their codewords."""
        for i in trainable:  # a layer entering S starts from its reconstruction (or original)
            if i not in current and options.init == "original":
                current[i] = originals[i].copy()
        weights = float_weights()
        for i in coded:
            weights[i] = shadow.get(i, originals[i]).reshape(encodings[i].tensor.shape)
        knobs = {f.name: getattr(options, f.name) for f in fields(Training)}
        fd = FinetuneData(
            x=x_tr, y=y_tr, biases=dict(biases), **knobs,
            coded={i: CodedLayer(tuple(np.array(b, np.float32) for b in books[i].subs),
                                 books[i].subvector_len,
                                 encodings[i].tensor.vector_permutation()) for i in coded})
        res = call_hook(hook, model, sorted(set(trainable) | set(coded)), weights, fd)
        for i, w in res.weights.items():
            w = np.asarray(w, np.float64).reshape(-1)
            if i in coded:
                shadow[i] = w
            else:
                current[i] = w
        biases.update(res.biases)

    def state(trainable):
        choices = [RAW if (i in trainable or books[i] is None) else 0 for i in range(n)]
        patches = {}
        for i in trainable:
            t = encodings[i].tensor
            if i in current:
                q = np.clip(np.round(current[i] / scales[i]), -127, 127).astype(np.int8)
                patches[t.offset] = q.tobytes()
        for i in biases:  # finetuned biases, of S layers or (frozen_biases) any layer
            li = layers[i]
            if li.bias_offset is not None:
                b = np.round(np.asarray(biases[i]).reshape(-1) / li.bias_scale)
                b = np.clip(b, -2**31, 2**31 - 1).astype("<i4")
                patches[li.bias_offset] = b.tobytes()
        # a PQ tensor's rebuilt bytes come from the encodings: keep codes in sync (E-step)
        for i in range(n):
            if choices[i] == 0 and encodings[i].rates[0].indices is not codes[i]:
                encodings[i].rates[0] = replace(encodings[i].rates[0], indices=codes[i],
                                                rebuilt=reconstruct(i))
        return choices, patches

    def measure(trainable):
        choices, patches = state(trainable)
        blob = rebuilt_model(model, encodings, choices, erase_names, patches)
        score, ok = evaluate(blob)
        return choices, patches, score, ok

    def eq3_error(i):
        w_hat = current[i] if i in current else reconstruct(i).astype(np.float64) * scales[i]
        d = originals[i] - w_hat
        return float(np.dot(d, d)) / max(encodings[i].tensor.size, 1)

    steps = []
    S = first_last(layers) if n > 2 else list(range(n))
    ok = False
    if options.precheck:  # not in Algorithm 1: nothing to finetune if PQ alone passes
        choices, patches, score, ok = measure([])
        steps.append(EMStep([], score, ok))
        _log(model, steps[-1], metric)
        if ok:
            return EMOutcome(encodings, choices, patches, metric, acc_orig, score, ok, [], steps)
    # lines 1-8: initial finetuning of the first and last layers
    def m_step():
        """Finetune S with the rest frozen, then measure the rebuilt model in TFLM."""
        finetune(S)
        result = measure(S)
        steps.append(EMStep(list(S), result[2], result[3]))
        _log(model, steps[-1], metric)
        if progress:
            progress(steps[-1])
        return result

    choices, patches, score, ok = m_step()
    iterations = max(n - 2, 0) if options.max_iterations is None else options.max_iterations
    i = 0
    while not ok and i < iterations:
        i += 1
        # E-step (lines 12-13): nearest codewords of the frozen codebooks, layers not in S
        rest = [k for k in range(n) if k not in S and books[k] is not None]
        if options.reassign == "finetuned" and rest:
            finetune((), coded=rest)
        for k in rest:  # without a shadow the target is the original: codes already fit it
            if k in shadow:
                t = encodings[k].tensor
                values = (shadow[k] / scales[k]).astype(np.float32)  # int8 units, unrounded
                codes[k] = books[k].encode(replace(t, values=values).vector_order())
        # M-step (lines 14-17): rebuild from codes, finetune S with the rest frozen
        choices, patches, score, ok = m_step()
        if ok:
            break
        if options.heuristic:  # lines 22-24: eq. 3
            rest = [k for k in range(n) if k not in S and books[k] is not None]
            if not rest:
                break
            S = sorted(S + [max(rest, key=eq3_error)])
    fell_back = False
    if not ok and options.fallback_raw:
        fell_back = True
        # the data-free allocation (rates + raw, judged on the model's own inputs in TFLM)
        # before giving up: it keeps the original values of whatever it leaves raw
        samples = model_inputs(model, data.x_test)[:32]
        free, _ = fidelity_choose(model, encodings, Evaluator(model, samples, len(samples)),
                                  target, "sensitivity", erase_names)
        choices, patches = free, {}
        score, ok = evaluate(rebuilt_model(model, encodings, choices, erase_names, patches))
        if ok:
            log.warning("%s: EM finetuning did not reach the target; using the data-free "
                        "allocation, which does", model.name)
        else:  # never worse than the original: every layer raw with its original values
            choices = [RAW] * n
            score, ok = evaluate(rebuilt_model(model, encodings, choices, erase_names, patches))
            log.warning("%s: EM finetuning did not reach the target; kept raw", model.name)
    return EMOutcome(encodings, choices, patches, metric, acc_orig, score, ok, list(S), steps,
                     fell_back)


def _log(model, step, metric):
    unit = "%" if metric == "accuracy" else " dB"
    log.info("%s: EM S=%s -> %.2f%s%s", model.name, step.trainable, step.score, unit,
             " (target met)" if step.passed else "")


def for_build(model: ModelIR, encodings: list[TensorEncodings], spec: DataSpec,
              options: BuildOptions, erase_names: bool, biases0: dict | None = None
              ) -> EMOutcome:
    """The compiler's entry: Algorithm 1 for one model of a build."""
    data = load_data(model, spec)
    hook = load_hook(options.finetune)
    if hasattr(hook, "threads") and getattr(hook, "threads", None) is None:
        # one thread: the lifted layers are too small to gain from more (two threads on a
        # busy 2-core machine were 10x slower, spinning), and the result must not depend on
        # the machine's core count
        hook.threads = 1
    em_opts = options.em
    if options.mode == "pq-mopt":  # ablation: first/last only, no heuristic, no safety net
        em_opts = replace(em_opts, heuristic=False, fallback_raw=False)
    return run(model, encodings, data, em_opts, hook, options.target, erase_names,
               biases0=biases0)
