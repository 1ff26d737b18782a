#!/usr/bin/env python3
"""Compression benchmark: every mode on ../shared/models and on the examples.

Prints markdown (and writes it with --write FILE): per mode, input and image bytes, ratios vs the
int8 files, vs their int8 weights and the float32-equivalent ratio the paper reports, per-model
fidelity (output SNR in TFLM), build time; k-means time and quantisation error against
faiss-cpu on the same vectors (if faiss is installed); and the measurements behind the defaults
(rates, vector layout).

    python bench/compression.py [--write docs/benchmarks.md] [--quick]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from yonoc.backend.image_format import read_image  # noqa: E402
from yonoc.compiler import build, choose_layouts, learn_codebooks, load_models  # noqa: E402
from yonoc.ir import Group  # noqa: E402
from yonoc.options import BuildOptions  # noqa: E402
from yonoc.pq.codebooks import CodebookOptions, _training_vectors  # noqa: E402
from yonoc.pq.kmeans import kmeans, nearest  # noqa: E402
from yonoc.report import inspect_image  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "models")


def model_sets():
    sets = {}
    shared = sorted(glob.glob(os.path.join(SHARED, "*", "*.tflite")))
    if shared:
        sets["shared/models"] = shared
    ex = sorted(glob.glob(os.path.join(ROOT, "examples", "models", "*.tflite")))
    if ex:
        sets["examples"] = ex
    return sets


def shared_samples():
    """Real inputs that ship with ../shared/models (same as the tests use)."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import pathlib
    import tempfile

    from conftest import shared_models, shared_real_samples

    real = shared_real_samples(pathlib.Path(tempfile.mkdtemp()))
    out = []
    for path in shared_models():
        name = os.path.splitext(os.path.basename(path))[0]
        rand = os.path.splitext(path)[0] + ".rand_in.npy"
        if os.path.exists(rand):
            out.append((name, rand))
        if name in real:
            out.append((name, real[name]))
    return tuple(out)


def held_out_snr(image: bytes, paths) -> dict:
    """Output SNR of each rebuilt model on 32 generated inputs the build never saw."""
    from yonoc.backend.image_format import rebuild
    from yonoc.frontend import read_model
    from yonoc.interpreter import dequantize, generated_inputs, run
    from yonoc.passes.fidelity import snr_db

    img = read_image(image)
    by_name = {os.path.splitext(os.path.basename(p))[0]: p for p in paths}
    out = {}
    for i, t in enumerate(img.tasks):
        m = read_model(by_name[t.name])
        if not m.weights:
            continue
        xs = generated_inputs(m, 32, seed=12345)
        a, b = run(m.data, xs), run(rebuild(img, i), xs)
        ya = [dequantize(o[0], m.outputs[0]) for o in a]
        yb = [dequantize(o[0], m.outputs[0]) for o in b]
        out[t.name] = snr_db(
            sum(float(np.sum(y * y)) for y in ya),
            sum(float(np.sum((y - z) ** 2)) for y, z in zip(ya, yb)),
        )
    return out


def run_mode(paths, options):
    t = time.perf_counter()
    result = build(paths, options)
    elapsed = time.perf_counter() - t
    r = inspect_image(read_image(result.image))
    return result, r, elapsed


def fmt_snr(v):
    if v is None:
        return "-"
    return "inf" if v == float("inf") else f"{v:.1f}"


def bench_modes(name, paths, out, quick):
    samples = shared_samples() if name == "shared/models" else ()
    modes = [
        ("int8", {}),
        ("pq-s", {}),
        ("pq-m", {}),
        ("yono", {}),
        ("yono, eq3 fallback", {"fallback": "eq3"}),
    ]
    if quick:
        modes = [m for m in modes if m[0] in ("int8", "pq-m", "yono")]
    out.append(f"### {name} ({len(paths)} models)\n")
    out.append(
        "| mode | input bytes | image bytes | vs int8 files | vs int8 weights | "
        "vs float32 | models meeting 20 dB | min SNR (dB) | build (s) |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_model = {}
    for label, extra in modes:
        mode = label.split(",")[0]
        opts = BuildOptions(mode=mode, samples=samples, **extra)
        result, r, elapsed = run_mode(paths, opts)
        snrs = [m.snr_db for m in result.models if m.snr_db is not None]
        ok = sum(1 for s in snrs if s >= 20.0)
        out.append(
            f"| {label} | {r['original_bytes']} | {r['image_bytes']} | "
            f"{r['ratio_vs_int8_files']:.2f}x | {r['ratio_vs_int8_weights']:.2f}x | "
            f"{r['ratio_vs_float32']:.2f}x | {ok}/{len(snrs)} | "
            f"{fmt_snr(min(snrs) if snrs else None)} | {elapsed:.1f} |"
        )
        per_model[label] = (result, r)
        print(out[-1], flush=True)
    out.append("")
    result, r = per_model["yono"]
    held = held_out_snr(result.image, paths)
    out.append(
        "Per model, `yono` mode (default). Held-out SNR: on 32 generated inputs the build "
        "never saw (measured, not a target):\n"
    )
    out.append(
        "| model | original | in image | ratio | weights int8 -> image | rates | "
        "SNR (dB) | held-out SNR | top-1 (real) | samples | TFLM runs |"
    )
    out.append("|---|---:|---:|---:|---|---|---:|---:|---:|---|---:|")
    by_name = {m["name"]: m for m in r["models"]}
    for m in result.models:
        im = by_name[m.name]
        agree = "-" if m.agreement is None else f"{100 * m.agreement:.0f}%"
        rates = ", ".join(f"{k}: {v}" for k, v in m.rate_counts.items()) or "-"
        out.append(
            f"| {m.name} | {m.original_bytes} | {im['image_bytes']} | "
            f"{im['ratio']:.2f}x | {m.weight_bytes} -> {m.weight_image_bytes} | {rates} | "
            f"{fmt_snr(m.snr_db)} | {fmt_snr(held.get(m.name))} | {agree} | {m.samples} "
            f"| {m.evaluations} |"
        )
    out.append("")


def bench_kmeans(paths, out):
    models = choose_layouts(load_models(paths), False)
    tensors = [t for m in models for t in m.weights]
    try:
        import faiss
    except ImportError:
        faiss = None
    out.append("### k-means: yonoc (numpy) vs faiss-cpu on the same vectors\n")
    out.append(
        "K = 256, 50 Lloyd iterations both, sub-codebook 0 of each group and rate, at "
        "most 65,536 training vectors (the build's defaults); MSE per value in the int8 "
        "domain.\n"
    )
    out.append("| group | s | vectors | yonoc time (s) | yonoc MSE | faiss time (s) | faiss MSE |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for group in (Group.CONV3X3, Group.POINTWISE):
        members = [t for t in tensors if t.group == group]
        for s in (4, 2):
            x = _training_vectors(members, s, 2, 0)
            if len(x) > 65536:
                rng = np.random.default_rng(0)
                x = x[np.sort(rng.choice(len(x), 65536, replace=False))]
            t = time.perf_counter()
            c, _ = kmeans(x, 256, seed=0, iterations=50)
            ty = time.perf_counter() - t
            _, d = nearest(x, c)
            row = f"| {group.name} | {s} | {len(x)} | {ty:.2f} | {d.mean() / s:.2f} |"
            if faiss is not None:
                t = time.perf_counter()
                km = faiss.Kmeans(s, 256, niter=50, seed=1, verbose=False)
                km.train(np.ascontiguousarray(x, np.float32))
                tf = time.perf_counter() - t
                _, df = nearest(x, km.centroids)
                row += f" {tf:.2f} | {df.mean() / s:.2f} |"
            else:
                row += " - | - |"
            out.append(row)
            print(row, flush=True)
    out.append("")


def bench_defaults(paths, out):
    """Weight SNR per rate and vector layout: the measurements behind the defaults."""
    out.append(
        "### Rates and vector layout (weight SNR in the int8 domain, all tensors of the group)\n"
    )
    out.append(
        "| layout | group | "
        + " | ".join(f"s={s} ({8 / s:.2g} bit/w)" for s in (8, 4, 3, 2))
        + " |"
    )
    out.append("|---|---|---:|---:|---:|---:|")
    for kernel_major in (True, False):
        models = choose_layouts(load_models(paths), kernel_major)
        cs = learn_codebooks(
            models,
            CodebookOptions(
                subvector_lengths={Group.CONV3X3: (8, 4, 3, 2), Group.POINTWISE: (8, 4, 3, 2)}
            ),
        )
        for group in (Group.CONV3X3, Group.POINTWISE):
            cells = []
            for book in cs.rates(group):
                sig = err = 0.0
                for m in models:
                    for t in m.weights:
                        if t.group != group:
                            continue
                        v = t.vector_order()
                        rec = book.decode(book.encode(v), t.size).astype(np.float64)
                        sig += float(np.sum(v.astype(np.float64) ** 2))
                        err += float(np.sum((rec - v) ** 2))
                cells.append(f"{10 * np.log10(sig / err):.1f} dB" if err else "inf")
            out.append(
                f"| {'kernel-major' if kernel_major else 'linear'} | {group.name} | "
                + " | ".join(cells)
                + " |"
            )
            print(out[-1], flush=True)
    out.append("")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", help="also write the markdown to this file")
    ap.add_argument("--quick", action="store_true", help="fewer modes, no k-means/defaults")
    args = ap.parse_args()
    out = [
        "## Compression (bench/compression.py)\n",
        f"Machine: {os.cpu_count()} cores; yonoc builds with one worker per core. Ratios: "
        "`vs int8 files` = summed .tflite bytes / image bytes; `vs int8 weights` = int8 bytes "
        "of the compressible weight tensors / (index bytes + raw weights + codebooks); "
        "`vs float32` = the same models with float32 weights (file bytes + 3 x int8 weight "
        "bytes) / image bytes, the paper's measure. SNR: dequantised outputs of original vs "
        "rebuilt model in the TFLM interpreter over the build's sample inputs (real where "
        "shipped + 32 generated).\n",
    ]
    sets = model_sets()
    for name, paths in sets.items():
        bench_modes(name, paths, out, args.quick)
    if not args.quick:
        allpaths = [p for ps in sets.values() for p in ps]
        bench_kmeans(allpaths, out)
        bench_defaults(allpaths, out)
    text = "\n".join(out) + "\n"
    print(text)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
