"""What is inside an image: per-model and total sizes and ratios (`yonoc inspect`)."""

from __future__ import annotations

import math

from .backend import image_format as fmt
from .backend import notes as build_notes
from .budget import task_sram
from .errors import ImageError, ModelError
from .frontend import read_model_bytes


def inspect_image(image: fmt.Image, tensors: bool = False) -> dict:
    """Sizes and ratios computed from the image alone (it rebuilds every model to see them),
    fidelity figures from its build notes; with `tensors`, one row per weight tensor too."""
    try:
        notes = build_notes.decode(image.notes, len(image.tasks))
    except ImageError:  # the firmware ignores notes: bad ones cost the figures, not the image
        notes = None
    models = []
    tot_orig = tot_w_orig = tot_w_img = 0
    cb_bytes = sum(fmt.align(c.codewords.size * 2) for c in image.codebooks)
    for i, t in enumerate(image.tasks):
        model = fmt.rebuild(image, i)
        try:
            ir = read_model_bytes(model, t.name)
            operators, weights = ir.operators, ir.weights
        except ModelError:
            operators, weights = {}, []
        pq_fills = [f for f in t.fills if f.kind in (fmt.FillKind.PQ, fmt.FillKind.PQ_RESIDUAL)]
        pq_at = {f.dst_offset: f for f in pq_fills}
        w_orig = sum(w.size for w in weights)
        w_img = sum(
            fmt.align(len(pq_at[w.offset].payload)) if w.offset in pq_at else w.size
            for w in weights
        )
        n_raw = len(weights) - sum(1 for w in weights if w.offset in pq_at)
        decoded, kept = [], (0, 0)
        if t.flash:  # coded weights are decode ops of the flash model (their tensors: no data)
            decoded, kept = _flash_coded(model), _raw_kept(model)
            pq_fills = [op.fill for op in decoded]
            w_orig += sum(f.length for f in pq_fills)
            w_img += sum(fmt.align(len(f.payload)) for f in pq_fills)
            operators = {k: v for k, v in operators.items() if k != "CUSTOM:YONO_DECODE"}
        in_image = (
            fmt.align(t.skeleton_size)
            + fmt.align(fmt.FILL_RECORD.size * len(t.fills))
            + fmt.align(len(t.name.encode()) + 1)
            + fmt.TASK_ENTRY.size
            + sum(fmt.align(len(f.payload)) for f in t.fills)
        )
        models.append(
            {
                "name": t.name,
                "operators": operators,
                "original_bytes": t.original_size,
                "image_bytes": in_image,
                "rebuilt_bytes": t.model_size,
                "ratio": t.original_size / in_image if in_image else 0.0,
                "tensors_compressed": len(pq_fills),
                "tensors_raw": n_raw,
                "weight_bytes": w_orig,
                "weight_image_bytes": w_img,
                # issue 14: rebuild (model region + arena) or flash (arena, decoded weights in it)
                "execute": "flash" if t.flash else "rebuild",
                "sram_model_bytes": 0 if t.flash else t.model_size,
                "arena_bytes": t.arena_size,
                "sram_bytes": task_sram(t),
                "largest_decoded_bytes": max((f.length for f in pq_fills), default=0),
                # coded weights a flash task keeps raw to meet the per-task SRAM bar, their flash
                "flash_raw_kept": kept[0],
                "flash_raw_kept_bytes": kept[1],
                **_model_notes(notes[i] if notes else None),
            }
        )
        if tensors:
            models[-1]["tensors"] = tensor_rows(
                image, t, weights, notes[i] if notes else None
            ) + flash_rows(image, t, decoded, len(weights))
        tot_orig += t.original_size
        tot_w_orig += w_orig
        tot_w_img += w_img
    size = len(image.data)
    fp32 = tot_orig + 3 * tot_w_orig  # the same models with float32 weights
    return {
        "image_bytes": size,
        "codebooks": len(image.codebooks),
        "codebook_bytes": cb_bytes,
        "tasks": len(image.tasks),
        "original_bytes": tot_orig,
        "original_weight_bytes": tot_w_orig,
        "image_weight_bytes": tot_w_img + cb_bytes,
        "ratio_vs_int8_files": tot_orig / size,
        "ratio_vs_int8_weights": tot_w_orig / (tot_w_img + cb_bytes) if tot_w_orig else 0.0,
        "float32_equivalent_bytes": fp32,
        "ratio_vs_float32": fp32 / size,
        "max_model_bytes": image.max_model_size,
        "max_arena_bytes": image.max_arena_size,
        "sram": _sram(image),
        "models": models,
    }


def _flash_coded(model: bytes) -> list:
    from .backend.flash import decode_ops

    try:
        return decode_ops(model)
    except Exception:  # not a flatbuffer the object API reads: no coded figures
        return []


def _raw_kept(model: bytes) -> tuple:
    from .backend.flash import raw_kept

    try:
        return raw_kept(model)
    except Exception:  # not a flatbuffer the object API reads
        return 0, 0


def _sram(image: fmt.Image) -> dict:
    """What the firmware allocates in SRAM: the figure `--sram` checks (budget.firmware_sram)."""
    from .budget import firmware_sram

    need = firmware_sram(image)
    return {
        "total_bytes": need.total,
        "model_region_bytes": need.model_region,
        "arena_bytes": need.arena,
        "codeword_cache_bytes": need.codeword_cache,
        "largest_model": need.largest_model,
        "largest_arena": need.largest_arena,
        "arena_measured": need.arena_measured,
    }


def _finite(v):
    return v if v is None or math.isfinite(v) else None


def _model_notes(n) -> dict:
    """Per-model fidelity from the build notes; None (shown "-") when the image has none."""
    keys = (
        "snr_db",
        "agreement",
        "inputs_real",
        "inputs_generated",
        "accuracy_original",
        "accuracy",
        "target_snr_db",
        "target_agreement",
        "epsilon",
        "held_out_snr_db",
        "test_accuracy_original",
        "test_accuracy",
    )
    if n is None:
        return {"notes": False, **{k: None for k in keys}}
    return {
        "notes": True,
        "snr_db": n.snr_db if n.checked else None,
        "agreement": n.agreement,
        "inputs_real": n.real_inputs if n.checked else None,
        "inputs_generated": n.generated_inputs if n.checked else None,
        "accuracy_original": n.accuracy_original,
        "accuracy": n.accuracy,
        "target_snr_db": n.target_snr_db,
        "target_agreement": n.target_agreement,
        "epsilon": n.epsilon,
        # on inputs that chose neither codes nor rates (passes/output_aware.py)
        "held_out_snr_db": n.held_out_snr_db if n.checked else None,
        # held-out test data, reported only (the build decided on validation data)
        "test_accuracy_original": n.test_accuracy_original,
        "test_accuracy": n.test_accuracy,
    }


def _group_name(group: int) -> str:
    return "AB"[group] if group in (0, 1) else str(group)


def tensor_rows(image: fmt.Image, task, weights: list, note) -> list:
    """One row per weight tensor the frontend finds in the rebuilt model: its operator, shape
    and kernel group (frontend), rate and bytes (fill records), fidelity (build notes)."""
    pq_at = {
        f.dst_offset: f for f in task.fills if f.kind in (fmt.FillKind.PQ, fmt.FillKind.PQ_RESIDUAL)
    }
    by_offset = {tn.offset: tn for tn in note.tensors} if note else {}
    probe = {o: tn.alone_snr_db for o, tn in by_offset.items() if tn.alone_snr_db is not None}
    # share of the all-coarse output noise: the probe measured each tensor alone
    power = {
        o: 10 ** (-a / 10) if math.isfinite(a) else (0.0 if a > 0 else math.inf)
        for o, a in probe.items()
    }
    total = sum(power.values())
    rows = []
    for k, w in enumerate(weights):
        f = pq_at.get(w.offset)
        tn = by_offset.get(w.offset)
        if f is not None:
            bpw = 8 / image.codebooks[f.codebook_first].subvector_len
            if f.kind == fmt.FillKind.PQ_RESIDUAL:  # + the residual stage
                bpw += 8 / image.codebooks[f.residual_first].subvector_len
            rate, after = f"{bpw:g}bpw", len(f.payload)
        else:
            rate, bpw, after = "raw", 8.0, w.size
        share = None
        if w.offset in power and total > 0 and math.isfinite(total):
            share = power[w.offset] / total
        rows.append(
            {
                "model": task.name,
                "index": k,
                "operator": w.op_type,
                "shape": list(w.shape),
                "group": _group_name(int(w.group)),
                "rate": rate,
                "bits_per_weight": bpw,
                "bytes_before": w.size,
                "bytes_after": after,
                "weight_snr_db": tn.weight_snr_db if tn else None,
                "exact": f is None and (tn is None or tn.weight_snr_db == math.inf),
                "alone_snr_db": tn.alone_snr_db if tn else None,
                "noise_share": share,
            }
        )
    return rows


def flash_rows(image: fmt.Image, task, decoded: list, first: int) -> list:
    """Rows for a flash task's coded weights (its decode ops). The build notes key tensors by
    their offset in the rebuild-mode model, which a flash model no longer has: no SNR here."""
    rows = []
    for k, op in enumerate(decoded):
        f = op.fill
        bpw = 8 / image.codebooks[f.codebook_first].subvector_len
        if f.kind == fmt.FillKind.PQ_RESIDUAL:
            bpw += 8 / image.codebooks[f.residual_first].subvector_len
        rows.append(
            {
                "model": task.name,
                "index": first + k,
                "operator": op.consumer,
                "shape": list(op.shape),
                "group": _group_name(int(image.codebooks[f.codebook_first].group)),
                "rate": f"{bpw:g}bpw",
                "bits_per_weight": bpw,
                "bytes_before": f.length,
                "bytes_after": len(f.payload),
                "weight_snr_db": None,
                "exact": False,
                "alone_snr_db": None,
                "noise_share": None,
            }
        )
    return rows


def strict(obj):
    """JSON-safe copy: Infinity/NaN become null (strict parsers reject them)."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


TENSOR_COLUMNS = (
    "model",
    "index",
    "operator",
    "shape",
    "group",
    "rate",
    "bytes_before",
    "bytes_after",
    "weight_snr_db",
    "alone_snr_db",
    "noise_share",
)


def _fmt(v, spec: str, none: str = "-") -> str:
    if v is None:
        return none
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, spec)


def format_tensors(r: dict) -> str:
    """The `inspect --tensors` table."""
    lines = [
        f"{'model':24s} {'#':>3s} {'operator':18s} {'shape':16s} {'grp':3s} {'rate':>6s} "
        f"{'bytes':>8s} {'stored':>8s} {'wSNR dB':>8s} {'alone dB':>8s} {'noise':>6s}"
    ]
    for m in r["models"]:
        for t in m.get("tensors", []):
            shape = "x".join(map(str, t["shape"]))
            share = "-" if t["noise_share"] is None else f"{100 * t['noise_share']:.1f}%"
            lines.append(
                f"{m['name'][:24]:24s} {t['index']:3d} {t['operator'][:18]:18s} {shape[:16]:16s} "
                f"{t['group']:3s} {t['rate']:>6s} {t['bytes_before']:8d} {t['bytes_after']:8d} "
                f"{_fmt(t['weight_snr_db'], '.1f'):>8s} {_fmt(t['alone_snr_db'], '.1f'):>8s} "
                f"{share:>6s}"
            )
    if not any(m.get("notes") for m in r["models"]):
        lines.append("(no build notes in this image: fidelity columns are '-')")
    return "\n".join(lines)


def tensors_csv(r: dict) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TENSOR_COLUMNS)
    for m in r["models"]:
        for t in m.get("tensors", []):
            row = dict(t, shape="x".join(map(str, t["shape"])))
            w.writerow(
                [
                    ""
                    if row[c] is None
                    else _fmt(row[c], "g")
                    if isinstance(row[c], float)
                    else row[c]
                    for c in TENSOR_COLUMNS
                ]
            )
    return buf.getvalue()


def format_report(r: dict) -> str:
    lines = [
        f"{'model':40s} {'ops':>4s} {'original':>9s} {'in image':>9s} {'ratio':>6s} "
        f"{'PQ/raw':>7s} {'mode':>7s} {'SRAM model':>10s} {'arena':>8s} {'SRAM':>8s} "
        f"{'SNR dB':>6s} {'held':>5s} "
        f"{'agree':>6s} "
        f"{'inputs':>10s}"
    ]
    for m in r["models"]:
        agree = "-" if m.get("agreement") is None else f"{100 * m['agreement']:.1f}%"
        inputs = (
            "-" if m.get("inputs_real") is None else f"{m['inputs_real']}r+{m['inputs_generated']}g"
        )
        lines.append(
            f"{m['name'][:40]:40s} {sum(m['operators'].values()):4d} {m['original_bytes']:9d} "
            f"{m['image_bytes']:9d} {m['ratio']:5.2f}x "
            f"{m['tensors_compressed']:3d}/{m['tensors_raw']:<3d} {m['execute']:>7s} "
            f"{m['sram_model_bytes']:10d} {m['arena_bytes']:8d} {m['sram_bytes']:8d} "
            f"{_fmt(m.get('snr_db'), '.1f'):>6s} "
            f"{_fmt(m.get('held_out_snr_db'), '.1f'):>5s} {agree:>6s} "
            f"{inputs:>10s}"
        )
    for m in r["models"]:  # models built with labelled data are judged on accuracy
        if m.get("accuracy") is not None and m.get("accuracy_original") is not None:
            eps = "" if m.get("epsilon") is None else f" (allowed loss {m['epsilon']:g} pt)"
            test = (
                ""
                if m.get("test_accuracy") is None
                else f"; {m['test_accuracy_original']:.2f}% -> {m['test_accuracy']:.2f}% on its "
                "test data (reported only)"
            )
            lines.append(
                f"{m['name']}: accuracy {m['accuracy_original']:.2f}% -> "
                f"{m['accuracy']:.2f}% on its validation data{eps}{test}"
            )
    for m in r["models"]:
        if m.get("flash_raw_kept"):
            lines.append(
                f"{m['name']}: {m['flash_raw_kept']} coded weight(s) kept raw in flash mode to "
                f"meet the per-task SRAM bar ({m['flash_raw_kept_bytes']:+d} B of flash)"
            )
    lines += [
        "",
        f"codebooks: {r['codebooks']} sub-codebooks, {r['codebook_bytes']} bytes (fp16, shared)",
        f"image: {r['image_bytes']} bytes for {r['tasks']} models of {r['original_bytes']} bytes"
        f" -> {r['ratio_vs_int8_files']:.2f}x vs the int8 files",
        f"weights: {r['original_weight_bytes']} int8 bytes -> {r['image_weight_bytes']} "
        f"(indices + raw + codebooks) -> {r['ratio_vs_int8_weights']:.2f}x",
        f"float32-equivalent: {r['float32_equivalent_bytes']} bytes -> "
        f"{r['ratio_vs_float32']:.2f}x",
        f"firmware SRAM: {r['sram']['total_bytes']} bytes = model region "
        f"{r['sram']['model_region_bytes']} ({r['sram']['largest_model']}) + tensor arena "
        f"{r['sram']['arena_bytes']} ({r['sram']['largest_arena']}) + codeword cache "
        f"{r['sram']['codeword_cache_bytes']}"
        + (
            ""
            if r["sram"]["arena_measured"]
            else " (arena not measured for every model: a lower bound)"
        ),
    ]
    return "\n".join(lines)
