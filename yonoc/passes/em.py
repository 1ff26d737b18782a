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

Rates inside the loop (`rate_search`, the default; off in mode `pq-mopt` for the ablation):
the eq. 3 step moves the worst layer to its next finer rate (any number of rates,
`TensorEncodings.rates`, coarsest first) and adds it to S (raw, finetuned) only from the finest
one; once within epsilon every finetuned layer of S is coded again from its finetuned weights,
largest first, at the coarsest rate that still holds epsilon (no rate holds: it stays raw).

Every decision is judged on validation data (`ModelData.decide`); a separate test set is only
reported (`EMOutcome.test_original`, `.test_final`), never used by the build.

Layers in S are stored raw: their finetuned float weights are re-quantised to int8 with the
tensor's own per-channel scales (clipped to [-127, 127]) and their biases to int32 (scale =
input scale x weight scale), written into the rebuilt model as byte patches; with
`frozen_biases` the PQ-coded layers' biases are finetuned and patched too. Codewords never
change. A "layer" is a compressible weight tensor (`ModelIR.weights`); first/last are the ones
consumed by the lowest/highest operator index.

Without labels (`y` None) the hook distils from the original model and the loop targets
fidelity (the build's SNR/agreement target, measured in TFLM) instead of accuracy.

If the loop ends without meeting the target and some coded layer has a finer rate
(`finer_start`, not in Algorithm 1), the whole run starts again with the layers at the coarsest
start of all one rate finer (`EMOutcome.start_rate` counts the steps; the rates passed over stay
in the ladder, for `coarsen` and the re-coding of S; a start that could save less than
`min_start_gain` of the next one's bytes is not run at all); when no finer start is left, the
model gets the data-free allocation if that meets it, else it is kept as it was (every layer
raw, original weights and biases): never worse than the original.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING

import numpy as np

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
from .em_eval import (  # noqa: F401 (re-exported)
    EvalCache,
    accuracy,
    data_free_fallback,
    finer_start,
    finer_start_left,
    first_last,
    log_retry,
    log_skip,
    log_step,
    report_test,
    start_gain,
    start_levels,
)
from .em_types import EMOptions, EMOutcome, EMStep  # noqa: F401 (re-exported)
from .encode import RAW, TensorEncodings, channel_scales, rebuilt_model
from .fidelity import Evaluator, FidelityTarget, distillation_target

if TYPE_CHECKING:
    from ..options import BuildOptions

log = logging.getLogger("yonoc")


def coded_layer(book, permutation=None) -> CodedLayer:
    """The hook's read-only copy of a rate's codewords (both stages of a residual rate)."""
    return CodedLayer(
        tuple(np.array(b, np.float32) for b in book.subs),
        book.subvector_len,
        permutation,
        None if book.base is None else coded_layer(book.base),
    )


def run(
    model: ModelIR,
    encodings: list[TensorEncodings],
    data: ModelData,
    options: EMOptions,
    hook: FinetuneHook | str | None = None,
    target: FidelityTarget | None = None,
    erase_names: bool = True,
    progress: Callable[[EMStep], None] | None = None,
    biases0: dict | None = None,
    _start: int = 0,
) -> EMOutcome:
    """Algorithm 1 for one model. `hook`: a finetune hook or its name (default: torch).

    `encodings` are left as they are: the E-step's codes come back in `EMOutcome.encodings`.
    `biases0`: {layer index: float real-domain bias} to start from (bias correction of the
    coded layers, passes/output_aware.py); patched like finetuned biases.
    `_start`: how many times the coarsest start of all was dropped (`finer_start`); the
    dropped rates stay in the ladder, so `coarsen` and the re-coding of S still try them.
    """
    hook = hook if callable(hook) else load_hook(hook)
    given = encodings  # the codes as encoded, every rate: the data-free fallback's
    starts, base = start_levels(given, _start)  # this run's start and each layer's level

    def from_finer_start():
        """Algorithm 1 again from the next finer start (`finer_start`, not in Algorithm 1);
        biases0 fit rate 0's codes, so none are passed on (4.65x vs 5.98x, paper-tables.md)."""
        return run(
            model, given, data, options, hook, target, erase_names, progress, None, _start + 1
        )

    gain = start_gain(starts)
    if options.finer_start and options.rate_search and 0 < gain < options.min_start_gain:
        log_skip(model, _start, gain)
        return from_finer_start()
    n = len(encodings)
    encodings = [replace(e, rates=list(e.rates)) for e in encodings]  # copies get the new codes
    layers = layer_map(model)
    eps = options.epsilon if data.epsilon is None else data.epsilon
    target = target or FidelityTarget()

    # the evaluation: accuracy on labelled validation data, else fidelity on its inputs
    x_dec, y_dec = data.decide()
    x_test = model_inputs(model, x_dec)
    if data.labelled:
        metric = "accuracy"
        acc_orig = accuracy(model, model.data, x_test, y_dec)
        judged_by = None

        def judge(blob):
            a = accuracy(model, blob, x_test, y_dec)
            return a, acc_orig - eps <= a + 1e-9
    else:
        metric = "fidelity"
        acc_orig = None
        ev = Evaluator(model, x_test, len(x_test))
        # a classifier: top-1 agreement within eps on these real inputs + an SNR floor
        judged_by = distillation_target(target, eps, len(x_test), model.classifier)

        def judge(blob):
            m = ev.measure(blob)
            return m.snr_db, m.meets(judged_by)

    evaluate = EvalCache(judge)
    cost = {"train_s": 0.0, "train_calls": 0, "fallback_s": 0.0}

    def spent():
        """The cost so far, logged once per model: where a build's minutes go."""
        out = dict(cost, eval_s=evaluate.seconds, evals=evaluate.runs)
        log.info(
            "%s: EM cost: %d finetune calls %.1f s, %d TFLM evaluations %.1f s, fallback %.1f s"
            " (start rate %d)",
            model.name,
            out["train_calls"],
            out["train_s"],
            out["evals"],
            out["eval_s"],
            out["fallback_s"],
            _start,
        )
        return out

    x_val_f = float_inputs(model, x_dec)  # early stopping (`patience`) on the decision data
    # training set (a seeded subset if large), in the model's float input domain
    x_tr, y_tr = float_inputs(model, data.x_train), data.y_train
    if len(x_tr) > options.max_train:
        keep = np.sort(
            np.random.default_rng(options.seed).choice(len(x_tr), options.max_train, replace=False)
        )
        x_tr = x_tr[keep]
        y_tr = None if y_tr is None else np.asarray(y_tr)[keep]

    # per-layer state: rate (coarsest first), its codes, reconstructed and current weights
    level = list(base)
    books = [e.rates[base[i]].book if e.rates else None for i, e in enumerate(encodings)]
    scales = [channel_scales(e.tensor) for e in encodings]
    originals = [e.tensor.values.astype(np.float64) * scales[i] for i, e in enumerate(encodings)]
    codes = [e.rates[base[i]].indices if e.rates else None for i, e in enumerate(encodings)]

    def set_level(i, r, weights=None):
        """Layer i to rate r: its codes from the encodings, or for `weights` (float, file
        order, e.g. a finetuned layer coded again) nearest codewords of that rate."""
        level[i], books[i] = r, encodings[i].rates[r].book
        codes[i] = encodings[i].rates[r].indices if weights is None else nearest(i, weights)

    def nearest(i, weights):
        """Nearest codewords of layer i's current rate for float `weights` (file order)."""
        values = (weights / scales[i]).astype(np.float32)  # int8 units, unrounded
        return books[i].encode(replace(encodings[i].tensor, values=values).vector_order())

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
        if coded and not trainable:  # training through the codebooks only
            knobs["loss"] = options.coded_loss
        fd = FinetuneData(
            x=x_tr,
            y=y_tr,
            biases=dict(biases),
            **knobs,
            x_val=x_val_f if options.patience else None,
            y_val=y_dec if options.patience else None,
            coded={
                i: coded_layer(books[i], encodings[i].tensor.vector_permutation()) for i in coded
            },
        )
        t0 = time.perf_counter()
        res = call_hook(hook, model, sorted(set(trainable) | set(coded)), weights, fd)
        cost["train_s"] += time.perf_counter() - t0
        cost["train_calls"] += 1
        for i, w in res.weights.items():
            w = np.asarray(w, np.float64).reshape(-1)
            if i in coded:
                shadow[i] = w
            else:
                current[i] = w
        biases.update(res.biases)

    def state(trainable):
        choices = [RAW if (i in trainable or books[i] is None) else level[i] for i in range(n)]
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
                b = np.clip(b, -(2**31), 2**31 - 1).astype("<i4")
                patches[li.bias_offset] = b.tobytes()
        # a PQ tensor's rebuilt bytes come from the encodings: keep codes in sync (E-step)
        for i in range(n):
            r = choices[i]
            if r != RAW and encodings[i].rates[r].indices is not codes[i]:
                encodings[i].rates[r] = replace(
                    encodings[i].rates[r], indices=codes[i], rebuilt=reconstruct(i)
                )
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

    def coarsen(S, result):
        """Target met: rate steps the eq. 3 moves made that the result may not need."""
        if not (options.coarsen and options.rate_search):
            return result
        for i in sorted(range(n), key=lambda k: -encodings[k].tensor.size):
            if i in S or books[i] is None or level[i] == 0:
                continue
            keep = (level[i], books[i], codes[i])
            for r in range(keep[0]):  # coded from its shadow weights if trained, else as given
                set_level(i, r, shadow.get(i))
                tried = measure(S)
                if tried[3]:
                    result = tried
                    steps.append(EMStep(list(S), tried[2], True))
                    log_step(model, steps[-1], metric)
                    break
            else:
                level[i], books[i], codes[i] = keep
        return result

    def finish(choices, patches, score, ok, trainable, **extra):
        """The run's EMOutcome (test accuracy reported; `encodings` as they are by then)."""
        outcome = EMOutcome(
            encodings,
            choices,
            patches,
            metric,
            acc_orig,
            score,
            ok,
            trainable,
            steps,
            split=data.split,
            judged_by=judged_by,
            cost=spent(),
            start_rate=_start,
            **extra,
        )
        return report_test(model, data, outcome, erase_names)

    def met_with_all_coded(choices, patches, score, **extra):
        """The outcome when epsilon is met with no layer kept raw (S empty)."""
        choices, patches, score, _ = coarsen([], (choices, patches, score, True))
        return finish(choices, patches, score, True, [], **extra)

    if options.precheck:  # not in Algorithm 1: nothing to finetune if PQ alone passes
        choices, patches, score, ok = measure([])
        steps.append(EMStep([], score, ok))
        log_step(model, steps[-1], metric)
        if ok:
            return met_with_all_coded(choices, patches, score)

    # not in Algorithm 1: every layer coded, trained through its codebook (no raw layer)
    if options.coded_tries and options.rate_search and not ok:  # off: Algorithm 1 literally
        all_coded = [k for k in range(n) if books[k] is not None]
        for attempt in range(options.coded_tries if all_coded else 0):
            finetune((), coded=all_coded)
            for k in all_coded:  # E-step: nearest codewords of the trained shadow weights
                codes[k] = nearest(k, shadow[k])
            choices, patches, score, ok = measure([])
            steps.append(EMStep([], score, ok))
            log_step(model, steps[-1], metric)
            if ok:
                return met_with_all_coded(choices, patches, score, coded_tries=attempt + 1)
            finer = [k for k in all_coded if level[k] + 1 < len(encodings[k].rates)]
            if not finer:
                break
            worst = max(finer, key=eq3_error)
            set_level(worst, level[worst] + 1, shadow[worst])
        if options.restart and all_coded:  # missed: lines 1-8 start from the codes as encoded
            encodings[:] = [replace(e, rates=list(e.rates)) for e in given]
            level[:] = base
            books[:] = [e.rates[base[i]].book if e.rates else None for i, e in enumerate(encodings)]
            codes[:] = [
                e.rates[base[i]].indices if e.rates else None for i, e in enumerate(encodings)
            ]
            shadow.clear()
            biases.clear()
            biases.update(biases0 or {})

    # lines 1-8: initial finetuning of the first and last layers
    def m_step():
        """Finetune S with the rest frozen, then measure the rebuilt model in TFLM."""
        finetune(S)
        result = measure(S)
        steps.append(EMStep(list(S), result[2], result[3]))
        log_step(model, steps[-1], metric)
        if progress:
            progress(steps[-1])
        return result

    choices, patches, score, ok = m_step()
    rates = [len(e.rates) for e in encodings]
    if options.max_iterations is not None:
        iterations = options.max_iterations
    elif options.rate_search:  # every coded layer may step through its rates, then raw
        iterations = sum(rates[k] for k in range(n) if k not in S and rates[k])
    else:
        iterations = max(n - 2, 0)
    i = 0
    best, since_best = score, 0  # the loop's best score and M-steps since (`stall`)
    while not ok and i < iterations:
        if options.stall and options.rate_search and since_best >= options.stall:
            log.info("%s: EM loop: no better score in %d steps, stopping", model.name, since_best)
            break
        i += 1
        # E-step (lines 12-13): nearest codewords of the frozen codebooks, layers not in S
        rest = [k for k in range(n) if k not in S and books[k] is not None]
        if options.reassign == "finetuned" and rest:
            finetune((), coded=rest)
        for k in rest:  # without a shadow the target is the original: codes already fit it
            if k in shadow:
                codes[k] = nearest(k, shadow[k])
        # M-step (lines 14-17): rebuild from codes, finetune S with the rest frozen
        choices, patches, score, ok = m_step()
        if ok:
            break
        best, since_best = (score, 0) if score > best + 1e-9 else (best, since_best + 1)
        if options.heuristic:  # lines 22-24: eq. 3
            rest = [k for k in range(n) if k not in S and books[k] is not None]
            if not rest:
                break
            worst = max(rest, key=eq3_error)
            if options.rate_search and level[worst] + 1 < rates[worst]:
                set_level(worst, level[worst] + 1)  # a finer rate before raw
            else:
                S = sorted(S + [worst])
    recoded = []
    if ok and options.rate_search:
        # finetuned layers coded again from their finetuned weights: largest first, the
        # coarsest rate that still holds the target (each try: one evaluation, no training)
        for i in sorted(S, key=lambda k: -encodings[k].tensor.size):
            if not rates[i] or i not in current:
                continue
            keep = (level[i], books[i], codes[i])
            rest_S = [k for k in S if k != i]
            for r in range(rates[i]):
                set_level(i, r, current[i])
                c, p, sc, good = measure(rest_S)
                if good:
                    break
            if good:
                S = rest_S
                del current[i]
                recoded.append(i)
                choices, patches, score = c, p, sc
                steps.append(EMStep(list(S), score, True))
                log_step(model, steps[-1], metric)
            else:
                level[i], books[i], codes[i] = keep
        if recoded:
            choices, patches = state(S)
        choices, patches, score, _ = coarsen(S, (choices, patches, score, True))
    fell_back = False
    if not ok and options.finer_start and options.rate_search and finer_start_left(starts):
        # not in Algorithm 1: missed from these coarsest rates: again from the next finer ones
        spent_here = dict(cost, eval_s=evaluate.seconds, evals=evaluate.runs)
        log_retry(model, _start, spent_here)
        out = from_finer_start()
        out.steps[:0] = steps
        out.cost = {k: out.cost.get(k, 0) + spent_here.get(k, 0) for k in out.cost}
        return out
    if not ok and options.fallback_raw:
        fell_back = True
        # the codes as encoded (all rates), not the E-steps' (fitted to shadow weights)
        encodings = given
        t0 = time.perf_counter()
        choices, patches, score, ok = data_free_fallback(
            model, encodings, model_inputs(model, x_dec)[:32], target, erase_names, evaluate
        )
        cost["fallback_s"] = time.perf_counter() - t0
    return finish(choices, patches, score, ok, list(S), fell_back=fell_back, recoded=recoded)


def for_build(
    model: ModelIR,
    encodings: list[TensorEncodings],
    spec: DataSpec,
    options: BuildOptions,
    erase_names: bool,
    biases0: dict | None = None,
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
    if data.split:
        log.warning("%s: %s", model.name, data.split)
    if options.mode == "pq-mopt":  # ablation: first/last only, no heuristic, no safety net
        em_opts = replace(
            em_opts,
            heuristic=False,
            fallback_raw=False,
            rate_search=False,
            coded_tries=0,
            stall=0,
            finer_start=False,
        )
    return run(model, encodings, data, em_opts, hook, options.target, erase_names, biases0=biases0)
