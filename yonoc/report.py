"""What is inside an image: per-model and total sizes and ratios (`yonoc inspect`)."""

from __future__ import annotations

from .backend import image_format as fmt
from .errors import ModelError
from .frontend import read_model_bytes

_ALIGN = fmt.ALIGN


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def inspect_image(image: fmt.Image) -> dict:
    """Sizes and ratios computed from the image alone (it rebuilds every model to see them)."""
    models = []
    tot_orig = tot_w_orig = tot_w_img = 0
    cb_bytes = sum(_aligned(c.codewords.size * 2) for c in image.codebooks)
    for i, t in enumerate(image.tasks):
        model = fmt.rebuild(image, i)
        try:
            ir = read_model_bytes(model, t.name)
            operators, weights = ir.operators, ir.weights
        except ModelError:
            operators, weights = {}, []
        pq_fills = [f for f in t.fills if f.kind == fmt.FillKind.PQ]
        pq_at = {f.dst_offset: f for f in pq_fills}
        w_orig = sum(w.size for w in weights)
        w_img = sum(_aligned(len(pq_at[w.offset].payload)) if w.offset in pq_at else w.size
                    for w in weights)
        in_image = (_aligned(t.skeleton_size) + _aligned(24 * len(t.fills))
                    + _aligned(len(t.name.encode()) + 1) + 64
                    + sum(_aligned(len(f.payload)) for f in t.fills))
        models.append({
            "name": t.name,
            "operators": operators,
            "original_bytes": t.original_size,
            "image_bytes": in_image,
            "rebuilt_bytes": t.model_size,
            "ratio": t.original_size / in_image if in_image else 0.0,
            "tensors_compressed": len(pq_fills),
            "tensors_raw": len(weights) - sum(1 for w in weights if w.offset in pq_at),
            "weight_bytes": w_orig,
            "weight_image_bytes": w_img,
            "sram_model_bytes": t.model_size,
            "arena_bytes": t.arena_size,
        })
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
        "models": models,
    }


def format_report(r: dict) -> str:
    lines = [f"{'model':40s} {'ops':>4s} {'original':>9s} {'in image':>9s} {'ratio':>6s} "
             f"{'PQ/raw':>7s} {'SRAM model':>10s} {'arena':>8s}"]
    for m in r["models"]:
        lines.append(
            f"{m['name'][:40]:40s} {sum(m['operators'].values()):4d} {m['original_bytes']:9d} "
            f"{m['image_bytes']:9d} {m['ratio']:5.2f}x "
            f"{m['tensors_compressed']:3d}/{m['tensors_raw']:<3d} {m['sram_model_bytes']:10d} "
            f"{m['arena_bytes']:8d}")
    lines += [
        "",
        f"codebooks: {r['codebooks']} sub-codebooks, {r['codebook_bytes']} bytes (fp16, shared)",
        f"image: {r['image_bytes']} bytes for {r['tasks']} models of {r['original_bytes']} bytes"
        f" -> {r['ratio_vs_int8_files']:.2f}x vs the int8 files",
        f"weights: {r['original_weight_bytes']} int8 bytes -> {r['image_weight_bytes']} "
        f"(indices + raw + codebooks) -> {r['ratio_vs_int8_weights']:.2f}x",
        f"float32-equivalent: {r['float32_equivalent_bytes']} bytes -> "
        f"{r['ratio_vs_float32']:.2f}x",
        f"firmware needs: model region {r['max_model_bytes']} bytes, tensor arena "
        f"{r['max_arena_bytes']} bytes",
    ]
    return "\n".join(lines)
