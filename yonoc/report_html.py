"""`yonoc report`: one self-contained HTML page (inline SVG, no scripts, no network) from the
`inspect` figures, so a firmware engineer sees at a glance where the bytes went, at which rate,
how faithful each model is and how much flash/SRAM is left."""

from __future__ import annotations

import math
import os
from html import escape

import jinja2
from markupsafe import Markup

from . import __version__

RATE_COLORS = {
    "2bpw": "#1f78b4",
    "4bpw": "#a6cee3",
    "6bpw": "#33a02c",
    "raw": "#fb9a29",
    "other": "#bdbdbd",
}
ORIGINAL = "#e5e5e5"
FAIL, OK = "#d7301f", "#31a354"


def _rate_color(rate: str) -> str:
    return RATE_COLORS.get(rate, "#b2df8a")


def _kb(n) -> str:
    return f"{n / 1024:,.1f} KB"


def _db(v) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "lossless" if v > 0 else "-inf"
    return f"{v:.1f} dB"


def _short(name: str, n: int = 26) -> str:
    return name if len(name) <= n else name[: n - 1] + "\u2026"


def _rect(x, y, w, h, color, title) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h}" '
        f'fill="{color}"><title>{escape(title)}</title></rect>'
    )


def _text(x, y, s, anchor="start", cls="") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}>{escape(s)}</text>'


def _svg(width, height, body, label) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def rate_bytes(model: dict) -> dict:
    """Image bytes of a model split by rate; 'other' = graph, biases, tables (not weights)."""
    parts = {}
    for t in model.get("tensors", []):
        parts[t["rate"]] = parts.get(t["rate"], 0) + t["bytes_after"]
    parts["other"] = max(0, model["image_bytes"] - sum(parts.values()))
    return dict(sorted(parts.items(), key=lambda kv: _rate_order(kv[0])))


def _rate_order(rate: str) -> tuple:
    """Coded rates by bits per weight, then raw, then the non-weight bytes."""
    if rate in ("raw", "other"):
        return (1, rate == "other", 0.0, rate)
    try:
        return (0, False, float(rate.removesuffix("bpw")), rate)
    except ValueError:
        return (0, False, math.inf, rate)


def rate_columns(models: list) -> list:
    """Every rate some tensor of the image uses, plus raw and other: the table's columns."""
    rates = {"raw", "other"} | {t["rate"] for m in models for t in m.get("tensors", [])}
    return sorted(rates, key=_rate_order)


def sizes_chart(models: list, width=1000) -> Markup:
    """Per model: the original file (grey) over its bytes in the image, stacked by rate."""
    label_w, bar_w, row = 200, width - 200 - 150, 46
    top = max([m["original_bytes"] for m in models] + [1])
    body = []
    for i, m in enumerate(models):
        y = 8 + i * row
        body.append(_text(label_w - 8, y + 22, _short(m["name"]), "end", "label"))
        w = bar_w * m["original_bytes"] / top
        body.append(_rect(label_w, y, w, 14, ORIGINAL, f"original {m['original_bytes']} B"))
        body.append(
            _text(label_w + w + 6, y + 11, f"{_kb(m['original_bytes'])} original", cls="small")
        )
        x = label_w
        for rate, n in rate_bytes(m).items():
            w = bar_w * n / top
            body.append(_rect(x, y + 17, w, 18, _rate_color(rate), f"{rate}: {n} B"))
            x += w
        body.append(
            _text(x + 6, y + 31, f"{_kb(m['image_bytes'])} in image ({m['ratio']:.2f}x)", cls="num")
        )
    return _svg(width, 8 + row * len(models), body, "bytes per model")


def fidelity_chart(models: list, width=1000) -> Markup:
    """Per model: measured output SNR against its target (dashed line)."""
    label_w, bar_w, row = 200, width - 200 - 260, 26
    finite = [m["snr_db"] for m in models if m["snr_db"] is not None and math.isfinite(m["snr_db"])]
    targets = [m["target_snr_db"] for m in models if m["target_snr_db"] is not None]
    top = max(finite + targets + [30.0]) * 1.1
    body = []
    for i, m in enumerate(models):
        y = 6 + i * row
        body.append(_text(label_w - 8, y + 14, _short(m["name"]), "end", "label"))
        snr, target = m["snr_db"], m["target_snr_db"]
        if snr is not None:
            v = top if math.isinf(snr) and snr > 0 else max(0.0, snr if math.isfinite(snr) else 0)
            ok = target is None or snr >= target
            if m["epsilon"] is not None and m["accuracy"] is not None:  # judged on accuracy
                ok = m["accuracy"] >= m["accuracy_original"] - m["epsilon"]
            body.append(
                _rect(label_w, y, bar_w * v / top, 18, OK if ok else FAIL, f"output SNR {_db(snr)}")
            )
        if target is not None:
            x = label_w + bar_w * target / top
            body.append(
                f'<line x1="{x:.1f}" y1="{y - 2}" x2="{x:.1f}" y2="{y + 20}" '
                'stroke="#333" stroke-dasharray="3,2"/>'
            )
        extra = [_db(snr)]
        if m["agreement"] is not None:
            extra.append(f"top-1 {100 * m['agreement']:.1f}%")
        if m["accuracy"] is not None and m["accuracy_original"] is not None:
            extra.append(f"acc. {m['accuracy_original']:.1f}% -> {m['accuracy']:.1f}%")
        if m["inputs_real"] == 0:
            extra.append("generated inputs only")
        body.append(_text(label_w + bar_w + 8, y + 14, ", ".join(extra), cls="num"))
    return _svg(width, 6 + row * len(models), body, "output SNR per model")


def budget_chart(r: dict, limits, width=1000) -> Markup:
    """Flash: the image; SRAM: model region + arena + codeword cache; against the budget."""
    sram = r.get("sram") or {
        "model_region_bytes": r["max_model_bytes"],
        "arena_bytes": r["max_arena_bytes"],
        "codeword_cache_bytes": 0,
    }
    flash_parts = [("codebooks", r["codebook_bytes"], "#6a3d9a")]
    flash_parts.append(("models", r["image_bytes"] - r["codebook_bytes"], "#1f78b4"))
    sram_parts = [
        ("model region", sram["model_region_bytes"], "#1f78b4"),
        ("tensor arena", sram["arena_bytes"], "#a6cee3"),
        ("codeword cache", sram.get("codeword_cache_bytes", 0), "#6a3d9a"),
    ]
    rows = [
        ("flash", flash_parts, getattr(limits, "flash", None)),
        ("SRAM", sram_parts, getattr(limits, "sram", None)),
    ]
    label_w, bar_w = 90, width - 90 - 330
    body = []
    for i, (name, parts, limit) in enumerate(rows):
        used = sum(n for _, n, _ in parts)
        top = max(used, limit or 0, 1)
        y = 8 + i * 44
        body.append(_text(label_w - 8, y + 16, name, "end", "label"))
        if limit:
            body.append(_rect(label_w, y, bar_w * limit / top, 22, "#f4f4f4", f"budget {limit} B"))
        x = label_w
        for what, n, color in parts:
            w = bar_w * n / top
            body.append(_rect(x, y, w, 22, color, f"{what}: {n} B"))
            x += w
        if limit:
            lx = label_w + bar_w * limit / top
            body.append(
                f'<line x1="{lx:.1f}" y1="{y - 4}" x2="{lx:.1f}" y2="{y + 26}" '
                f'stroke="{FAIL if used > limit else "#333"}" stroke-width="2"/>'
            )
            head = f"{_kb(used)} of {_kb(limit)}: " + (
                f"{_kb(limit - used)} free" if used <= limit else f"{_kb(used - limit)} OVER"
            )
        else:
            head = f"{_kb(used)} (no budget given)"
        body.append(_text(label_w + bar_w + 8, y + 16, head, cls="num"))
        body.append(
            _text(label_w, y + 36, ", ".join(f"{w} {_kb(n)}" for w, n, _ in parts), cls="small")
        )
    return _svg(width, 8 + 44 * len(rows), body, "flash and SRAM")


def tensor_chart(model: dict, width=1000) -> Markup:
    """One row per weight tensor: original bytes (grey) and stored bytes (colour = rate)."""
    label_w, bar_w, row = 250, width - 250 - 300, 16
    ts = model.get("tensors", [])
    top = max([t["bytes_before"] for t in ts] + [1])
    body = []
    for i, t in enumerate(ts):
        y = 4 + i * row
        shape = "x".join(map(str, t["shape"]))
        body.append(
            _text(
                label_w - 6,
                y + 10,
                _short(f"{t['index']} {t['operator']} {shape}", 40),
                "end",
                "small",
            )
        )
        body.append(
            _rect(
                label_w,
                y,
                bar_w * t["bytes_before"] / top,
                12,
                ORIGINAL,
                f"int8: {t['bytes_before']} B",
            )
        )
        body.append(
            _rect(
                label_w,
                y + 2,
                bar_w * t["bytes_after"] / top,
                8,
                _rate_color(t["rate"]),
                f"{t['rate']}: {t['bytes_after']} B",
            )
        )
        share = "" if t["noise_share"] is None else f", noise {100 * t['noise_share']:.0f}%"
        w = t["weight_snr_db"]
        wtext = "" if w is None else ", exact" if math.isinf(w) and w > 0 else f", w {_db(w)}"
        body.append(
            _text(
                label_w + bar_w + 6,
                y + 10,
                f"{t['rate']} {t['bytes_after']} B{wtext}{share}",
                cls="small",
            )
        )
    return _svg(width, 8 + row * len(ts), body, f"weight tensors of {model['name']}")


def legend(rates: list) -> Markup:
    items = [("original int8", ORIGINAL)] + [
        (f"{k} " + ("weights" if k != "other" else "(graph, biases, tables)"), _rate_color(k))
        for k in rates
    ]
    body, x = [], 0
    for name, color in items:
        body.append(_rect(x, 2, 12, 12, color, name))
        body.append(_text(x + 16, 12, name, cls="small"))
        x += 22 + 7 * len(name)
    return _svg(int(x), 18, body, "legend")


def render(r: dict, limits=None, title: str = "image") -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(here, "backend", "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    models = r["models"]
    return env.get_template("report.html.j2").render(
        r=r,
        title=title,
        version=__version__,
        limits=limits,
        models=models,
        sizes=sizes_chart(models),
        fidelity=fidelity_chart(models),
        budget=budget_chart(r, limits),
        tensors=[(m, tensor_chart(m)) for m in models],
        legend=legend(rate_columns(models)),
        rates=rate_columns(models),
        db=_db,
        kb=_kb,
        rate_bytes=rate_bytes,
        any_notes=any(m["notes"] for m in models),
    )
