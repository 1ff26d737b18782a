"""The build driver: files -> IR per model -> codebooks -> codes + raw choices -> image.

Each stage is a plain function; this module only runs them in order and collects figures for the
report.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from dataclasses import dataclass, field

from . import progress, workers
from .backend import execute, flash
from .backend import image_format as fmt
from .backend import notes as build_notes
from .backend.lower import lower_task
from .errors import LiftError, YonocError
from .frontend import read_model
from .interpreter import measure_arena
from .options import MODES, BuildOptions
from .passes import em, encode, fidelity, output_aware
from .pq import codebooks as pq
from .samples import check_inputs, samples_for

log = logging.getLogger("yonoc")


def _lengths(by_group: dict) -> str:
    """{Group: lengths} as --subvector-lengths writes them: A=4,2 B=4,2."""
    names = {g: n for n, g in pq.GROUP_NAMES.items()}
    return " ".join(
        f"{names.get(g, g)}={','.join(map(str, v))}" for g, v in sorted(by_group.items()) if v
    )


@dataclass
class ModelResult:
    name: str
    original_bytes: int
    weight_bytes: int
    tensors: int
    rate_counts: dict  # "2.0bpw" / "raw" -> count
    weight_image_bytes: int  # index bytes + raw weight bytes
    snr_db: float | None
    agreement: float | None
    samples: str  # "real (N)" or "generated (N)"
    evaluations: int
    arena_size: int
    # --- EM finetuning (passes/em.py); None/0 for models built without data
    accuracy_original: float | None = None  # % on the model's val data (decisions), TFLM int8
    accuracy: float | None = None  # % of the rebuilt model (or SNR dB when distilled)
    test_accuracy_original: float | None = None  # % on held-out test data (reported only)
    test_accuracy: float | None = None
    finetuned: list = field(default_factory=list)  # layer indices stored raw, finetuned
    notes: build_notes.ModelNote | None = None  # what the image's build notes keep of it
    # --- how far the fidelity figures can be trusted (_judge)
    fidelity: str = "measured"  # measured | near-constant (outputs barely vary: judged on
    #   their varying part too) | constant (nothing measurable: kept raw) | unchecked
    agreement_generated: float | None = None  # top-1 agreement on the generated inputs
    warnings: list = field(default_factory=list)  # shown at default verbosity, in the report
    # --- execution mode (issue 14, backend/execute.py): rebuild or flash
    execute: str = "rebuild"
    execute_reason: str = ""
    flash_arena_size: int = 0  # flash-mode arena (0: not measured)
    flash_blockers: list = field(default_factory=list)  # why it cannot run in flash mode
    largest_decoded: int = 0  # bytes of its largest coded weight tensor
    flash_raw_kept: int = 0  # coded weights kept raw in flash mode (the per-task bar)


@dataclass
class BuildResult:
    image: bytes
    models: list = field(default_factory=list)
    codebook_bytes: int = 0
    timings: dict = field(default_factory=dict)


def load_models(paths: list) -> list:
    if not paths:
        raise YonocError("no input models given")
    models = [read_model(p) for p in paths]
    seen = {}
    for m in models:
        if m.name in seen:
            raise YonocError(
                f"duplicate model name {m.name!r} ({seen[m.name]} and {m.path}): "
                "task names come from file names, rename one"
            )
        seen[m.name] = m.path
    # stable task order whatever order the shell gave the files in
    return sorted(models, key=lambda m: m.name)


def choose_layouts(models: list, kernel_major: bool) -> list:
    """The encoding's vector layout (passes/encode.py: `set_layout`)."""
    return encode.set_layout(models, kernel_major)


@workers.one_blas_thread
def learn_codebooks(models: list, options: pq.CodebookOptions) -> pq.CodebookSet:
    return pq.learn([t for m in models for t in m.weights], options)


@workers.one_blas_thread
def build(paths: list, options: BuildOptions, execution=None) -> BuildResult:
    """`execution` (backend.execute.Execution): which tasks run in flash mode; None: all
    rebuild."""
    if options.mode not in MODES:
        raise YonocError(f"unknown mode {options.mode!r} (choose from {', '.join(MODES)})")
    t0 = time.perf_counter()
    models = choose_layouts(load_models(paths), options.kernel_major)
    timings = {"read": time.perf_counter() - t0}
    explicit = {}
    for name, path in options.samples:
        explicit.setdefault(name, []).append(path)
    unknown = set(explicit) - {m.name for m in models}
    if unknown:
        raise YonocError(f"--samples names unknown model(s): {', '.join(sorted(unknown))}")
    unknown = set(dict(options.data)) - {m.name for m in models}  # --- EM (passes/em.py)
    if unknown:
        raise YonocError(f"data given for unknown model(s): {', '.join(sorted(unknown))}")
    check_inputs(models, explicit, options)
    if execution is not None:  # --execute NAME=... must name a task, before the long work
        execute.check_names(execution, [m.name for m in models])

    t = time.perf_counter()
    if options.mode not in ("int8",) and not options.frozen_codebooks:
        progress.note(
            "learning codebooks (k-means) on %d weight tensors of %d models",
            sum(len(m.weights) for m in models),
            len(models),
        )
    if options.mode == "int8":
        sets = {m.name: pq.CodebookSet([]) for m in models}
    elif options.frozen_codebooks:
        shared = pq.CodebookSet.from_npz(options.frozen_codebooks)
        sets = {m.name: shared for m in models}
        have, asked = shared.subvector_lengths(), options.codebook.subvector_lengths
        if {g: v for g, v in asked.items() if v} != have:
            log.warning(
                "%s: its rates are used (subvector lengths %s), not the build's (%s)",
                options.frozen_codebooks,
                _lengths(have),
                _lengths(asked),
            )
    elif options.mode == "pq-s":
        sets = {m.name: learn_codebooks([m], options.codebook) for m in models}
    else:
        shared = learn_codebooks(models, options.codebook)
        sets = {m.name: shared for m in models}
    if options.mode in ("pq-m", "pq-mopt", "pq-s") and not options.frozen_codebooks:
        # the paper's PQ baselines use one rate: keep only the coarsest per group
        sets = {k: _coarsest_only(v) for k, v in sets.items()}
    timings["codebooks"] = time.perf_counter() - t
    log.info("codebooks: %.1f s", timings["codebooks"])

    # codebook table: each distinct set once, in model order
    entries, book_index = [], {}
    for m in models:
        for book in sets[m.name].books:
            if id(book) in book_index:
                continue
            book_index[id(book)] = len(entries)
            entries += [fmt.CodebookEntry(int(book.group), sub) for sub in book.subs]

    t = time.perf_counter()
    coded = options.mode != "int8" and options.encode != "nearest"
    if coded and not importlib.util.find_spec("torch"):
        log.warning(  # said once, here: the workers fall back quietly
            "--encode %s needs PyTorch for calibration activations; without it every model "
            "gets nearest-codeword codes (fewer bytes saved): pip install 'yonoc[torch]'",
            options.encode,
        )
    work = [
        (
            m,
            sets[m.name],
            [book_index[id(b)] for b in sets[m.name].books],
            options,
            explicit,
            execution,
        )
        for m in models
    ]
    jobs = min(options.jobs or os.cpu_count() or 1, len(work))
    done = [None] * len(work)

    def finished(i, out):
        done[i] = out
        bar.advance()
        _report_model(out[1], options)

    with progress.Bar(len(work), "compressing") as bar:
        if jobs > 1:
            # largest models first so the workers finish together
            order = sorted(range(len(work)), key=lambda i: -work[i][0].size)
            workers.run(_compile_model, work, jobs, finished, order)
        else:
            for i, w in enumerate(work):
                finished(i, _compile_model(w))
    tasks = [d[0] for d in done]
    results = [d[1] for d in done]
    timings["encode+fidelity"] = time.perf_counter() - t

    t = time.perf_counter()
    entries, tasks = drop_unused_codebooks(entries, tasks)
    if execution is not None:  # flash tasks: after renumbering (their records name codebooks)
        tasks = execute.apply(tasks, results, entries, execution)
    blob = build_notes.encode([r.notes for r in results]) if options.notes else b""
    image = fmt.write_image(entries, tasks, notes=blob)
    parsed = fmt.read_image(image)  # self-check: what the firmware will see
    for i, task in enumerate(tasks):
        if fmt.rebuild(parsed, i) != task.model:
            raise YonocError(f"internal error: task {task.name!r} does not rebuild exactly")
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    cb_bytes = sum(e.codewords.size * 2 for e in entries)
    return BuildResult(image, results, cb_bytes, timings)


def drop_unused_codebooks(entries: list, tasks: list):
    """Keep only the sub-codebooks some PQ record uses (e.g. a finer rate no tensor needed),
    renumbering the records; the order of the kept ones does not change."""
    used = set()
    pq_kinds = (fmt.FillKind.PQ, fmt.FillKind.PQ_RESIDUAL)
    for t in tasks:
        for f in t.fills:
            if f.kind in pq_kinds:
                used.update(range(f.codebook_first, f.codebook_first + f.codebook_count))
            if f.kind == fmt.FillKind.PQ_RESIDUAL:
                used.update(range(f.residual_first, f.residual_first + f.residual_count))
    new_index = {old: new for new, old in enumerate(sorted(used))}
    for t in tasks:
        for f in t.fills:
            if f.kind in pq_kinds:
                f.codebook_first = new_index[f.codebook_first]
            if f.kind == fmt.FillKind.PQ_RESIDUAL:
                f.residual_first = new_index[f.residual_first]
    return [e for i, e in enumerate(entries) if i in used], tasks


@workers.one_blas_thread
def _compile_model(args):
    """Encode one model, choose its rates/raw tensors, and make its image task.

    Runs in a worker process when building in parallel; depends only on its arguments, so the
    result is the same however many workers run.
    """
    m, codebook_set, firsts, options, explicit, *rest = args
    execution = rest[0] if rest else None
    book_index = {id(b): first for b, first in zip(codebook_set.books, firsts)}
    encs = encode.encode_model(m, codebook_set) if options.mode != "int8" else []
    erase = options.erase_names and options.mode != "int8"
    choices = [0 if e.rates else encode.RAW for e in encs]
    measurement, evaluator, samples_desc = None, None, "none"
    real, alone = 0, {}  # --- build notes: real inputs, per-tensor probe SNRs
    # --- output-aware codes and bias correction (passes/output_aware.py)
    cal, held_out = None, None
    if encs and options.encode != "nearest":  # every coding mode (pq-m/pq-s code everything)
        cal = output_aware.for_build(m, encs, options, explicit)
        encs = cal.encodings if cal is not None else encs
    # --- EM finetuning (Algorithm 1, passes/em.py): models with data, yono / pq-mopt modes
    patches, em_out = None, None
    if encs and options.mode in ("yono", "pq-mopt") and m.name in dict(options.data):
        try:
            em_out = em.for_build(
                m,
                encs,
                dict(options.data)[m.name],
                options,
                erase,
                output_aware.float_biases(m, cal) if cal is not None else None,
            )
            encs, choices, patches = em_out.encodings, em_out.choices, em_out.patches
        except LiftError as e:  # one model the lift lacks an operator for: not the whole build
            log.warning("%s: not finetuned, coded as a model without data (%s)", m.name, e)
    if options.check:
        samples, real = samples_for(m, explicit, options.generated_samples, options.max_samples)
        samples_desc = f"{real} real + {len(samples) - real} generated"
        evaluator = fidelity.Evaluator(m, samples, real)
        if em_out is not None:
            measurement = evaluator.measure(encode.rebuilt_model(m, encs, choices, erase, patches))
        elif options.mode == "yono" and encs:
            # checked again on inputs that chose neither codes nor rates (output_aware.py)
            choices, measurement, held_out, _ = output_aware.choose_with_margin(
                m,
                encs,
                evaluator,
                output_aware.held_out_evaluator(m, options),
                options,
                erase,
                alone,
                cal.patches if cal is not None else (lambda c: {}),
            )
            patches = cal.patches(choices) if cal is not None else None
        elif encs:
            patches = cal.patches(choices) if cal is not None else None
            measurement = evaluator.measure(encode.rebuilt_model(m, encs, choices, erase, patches))
    if patches is None and cal is not None and em_out is None:  # --no-check: corrected too
        patches = cal.patches(choices)
    rebuilt = encode.rebuilt_model(m, encs, choices, erase, patches)
    # smallest arena TFLM allocates the rebuilt model in, plus margin (yonoc/arena.py); 0 only
    # when tflite-micro is missing or cannot run the model, whether or not --no-check
    arena = measure_arena(rebuilt, name=m.name) if options.measure_arena else 0
    task = lower_task(m, rebuilt, encode.coded(encs, choices), book_index, arena)
    result = _model_result(m, encs, choices, measurement, evaluator, samples_desc, arena)
    if execution is not None and execution.may_flash(m.name) and options.measure_arena:
        cost = flash.measure(rebuilt, task.fills, m.name, arena)
        result.flash_blockers, result.flash_arena_size, result.largest_decoded = cost[:3]
        result.flash_raw_kept = cost.raw_kept
    result.notes = build_notes.model_note(
        m,
        task.model,
        measurement,
        real,
        len(evaluator.samples) - real if evaluator is not None else 0,
        options,
        em_out,
        alone,
    )
    if held_out is not None:
        result.notes.held_out_snr_db = held_out.snr_db
    if em_out is not None:
        result.accuracy_original, result.accuracy = em_out.original, em_out.final
        result.test_accuracy_original, result.test_accuracy = (
            em_out.test_original,
            em_out.test_final,
        )
        result.finetuned = list(em_out.trainable) if not em_out.fell_back else []
    judged_by = em_out.judged_by if em_out is not None else None
    # met epsilon on labelled accuracy: the output SNR target was not this model's criterion
    by_accuracy = em_out is not None and em_out.metric == "accuracy" and not em_out.fell_back
    _judge(
        result, m, options, measurement, evaluator, real, em_out is not None, judged_by, by_accuracy
    )
    return task, result


def _judge(
    r: ModelResult,
    m,
    options: BuildOptions,
    measurement,
    evaluator,
    real: int,
    with_data: bool,
    target: fidelity.FidelityTarget | None = None,
    by_accuracy: bool = False,
) -> None:
    """Say how far the fidelity figures can be trusted (ModelResult.fidelity, .warnings).
    `target`: the one a distilled model was judged by (em.EMOutcome.judged_by), if not the
    build's. `by_accuracy`: the model met epsilon on labelled data, so missing the output SNR
    target is no warning (its figure is still reported)."""
    target = target or options.target
    if measurement is None:
        r.fidelity = "unchecked"
        return
    r.agreement_generated = measurement.agreement_generated
    n = len(evaluator.samples)
    if not measurement.measurable:
        r.fidelity, r.snr_db = "constant", None
        kept = " so every weight stays raw" if options.mode == "yono" and not with_data else ""
        r.warnings.append(
            f"the original model gives the same outputs for all {n} check inputs: its output "
            f"SNR cannot be measured{kept}; give real inputs that tell its outputs apart "
            f"(--samples {m.name}=FILE.npy)"
        )
        return
    if evaluator.near_constant():
        r.warnings.append(
            f"the original model's outputs barely vary over the {n} check inputs (a model "
            "ignoring its input would reach "
            f"{fidelity.snr_db(evaluator.signal, evaluator.spread):.0f} dB): the target was "
            "also required on their varying part"
            + (
                f" ({_db(measurement.snr_varying_db)})"
                if measurement.snr_varying_db is not None
                else ""
            )
            + f"; real inputs (--samples {m.name}=FILE.npy) judge it better"
        )
    r.fidelity = "near-constant" if evaluator.near_constant() else "measured"
    if not real and not with_data:
        r.warnings.append(
            "fidelity checked on generated inputs only (real ones: "
            f"--samples {m.name}=FILE.npy, or {m.name}.sample.npy beside it)"
        )
    if not by_accuracy and not measurement.meets(target):
        why = {
            "pq-m": "pq-m codes every weight",
            "pq-s": "pq-s codes every weight",
            "pq-mopt": "pq-mopt keeps only what EM finetuning chose",
        }.get(options.mode, "")
        agree = (
            ""
            if measurement.agreement is None
            else f", top-1 agreement {100 * measurement.agreement:.1f}%"
        )
        r.warnings.append(
            f"below the fidelity target: output SNR {measurement.snr_db:.1f} dB"
            f"{agree} (target {target.snr_db:g} dB, "
            f"{100 * target.min_agreement:g}%)" + (f"; {why}" if why else "")
        )


def compile_model(m, codebook_set: pq.CodebookSet, firsts: list, options: BuildOptions):
    """One model against codebooks already in a table (`firsts`: each book's first table
    index): the per-model path of `build`, for `yonoc add`. Returns (task, ModelResult)."""
    explicit = {}
    for name, path in options.samples:
        explicit.setdefault(name, []).append(path)
    return _compile_model((m, codebook_set, firsts, options, explicit))


def _coarsest_only(s: pq.CodebookSet) -> pq.CodebookSet:
    books = []
    for g in sorted({b.group for b in s.books}):
        books.append(s.rates(g)[0])
    return pq.CodebookSet(books)


def _model_result(m, encs, choices, measurement, evaluator, samples_desc, arena):
    counts = {}
    wbytes = 0
    for e, c in zip(encs, choices):
        key = "raw" if c == encode.RAW else f"{e.rates[c].book.bits_per_weight:g}bpw"
        counts[key] = counts.get(key, 0) + 1
        wbytes += e.bytes_at(c)
    if not encs:
        wbytes = m.weight_bytes
        if m.weights:
            counts["raw"] = len(m.weights)
    return ModelResult(
        name=m.name,
        original_bytes=m.size,
        weight_bytes=m.weight_bytes,
        tensors=len(m.weights),
        rate_counts=dict(sorted(counts.items())),
        weight_image_bytes=wbytes,
        snr_db=measurement.snr_db if measurement else None,
        agreement=measurement.agreement if measurement else None,
        samples=samples_desc,
        evaluations=evaluator.evaluations if evaluator else 0,
        arena_size=arena,
    )


def _report_model(r: ModelResult, options: BuildOptions) -> None:
    """The model's completion line, as it finishes, and what a user must not miss about it."""
    progress.note("%s: %s", r.name, _summary(r))
    if r.tensors == 0 and options.mode != "int8":
        log.warning("%s: no compressible int8 conv/FC weights; stored as it is", r.name)
    for w in r.warnings:
        log.warning("%s: %s", r.name, w)


def _db(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f} dB" if math.isfinite(v) else "lossless"


def _summary(r: ModelResult) -> str:
    rates = (
        ", ".join(
            f"{n} at {k[:-3]} bits/weight" if k != "raw" else f"{n} raw"
            for k, n in r.rate_counts.items()
        )
        or "no weight tensors"
    )
    if r.fidelity == "unchecked" or r.samples == "none":
        fid = "fidelity not checked"
    elif r.fidelity == "constant":
        fid = f"output SNR not measurable (constant outputs on {r.samples} inputs)"
    else:
        fid = f"output SNR {_db(r.snr_db)} on {r.samples} inputs"
        if r.agreement is not None:
            fid += f", top-1 agreement {100 * r.agreement:.0f}% on the real ones"
        elif r.agreement_generated is not None:
            fid += f", top-1 agreement {100 * r.agreement_generated:.0f}% on the generated ones"
    acc = ""
    if (
        r.accuracy is not None
        and r.accuracy_original is not None
        and r.notes is not None
        and not r.notes.distilled
    ):  # --- EM with labels: val decides, test is reported
        acc = f"; accuracy val {r.accuracy_original:.1f}% -> {r.accuracy:.1f}%"
        if r.test_accuracy is not None:
            acc += f", test {r.test_accuracy_original:.1f}% -> {r.test_accuracy:.1f}%"
    elif r.notes is not None and r.notes.distilled and r.notes.target_snr_db is not None:
        acc = (
            f"; distilled, judged on held-back inputs by output SNR >= {r.notes.target_snr_db:g} dB"
        )
        if r.notes.target_agreement is not None:
            acc = (
                "; distilled, judged on held-back inputs by top-1 agreement >= "
                f"{100 * r.notes.target_agreement:g}% (output SNR floor "
                f"{r.notes.target_snr_db:g} dB)"
            )
    return (
        f"{r.weight_bytes} -> {r.weight_image_bytes} weight bytes ({rates}); {fid}{acc}; "
        f"{r.evaluations} TFLM runs"
    )
