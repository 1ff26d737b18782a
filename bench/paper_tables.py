#!/usr/bin/env python3
"""Reproduce the YONO paper's ablation (Fig. 3 / Table 2, §4.1.3) and unseen-model case (§4.4)
on yonoc's example models and their labelled test sets.

For each mode (int8, pq-s, pq-m, pq-mopt, yono) the whole example set is built into one image
with `yonoc.compiler.build`; every task is then rebuilt *from the image* and its accuracy
measured on the model's test set in the TFLM interpreter (int8), next to the original's.
Ratios are on the compressible int8 weight bytes (index bytes + raw bytes; with and without
the shared codebooks), plus the whole-image ratio.

Unseen models (§4.4): codebooks are learned on some models (`yonoc codebooks learn`), frozen,
and used to compress the others (`--codebooks`) in pq-m and yono modes.

    python bench/paper_tables.py                       # print the tables
    python bench/paper_tables.py --write docs/paper-tables.md
    python bench/paper_tables.py --models examples/models --epsilon 0.5 --modes yono pq-m
    python bench/paper_tables.py --protocol --epsilon 0.5 --write docs/paper-tables.md

`--protocol` (issue 9): only the yono build under the val/test protocol (`<name>.val.npz`
decides, else the test set is split seeded; test accuracy reported only), per model ratio,
rates, val and test accuracy, layers finetuned, plus leave-one-out builds (codebooks frozen
from the other examples, --loo-only for those alone); with --write the section alone goes to
the file, between markers, for docs/paper-tables.md.

Needs torch for pq-mopt / yono (pip install 'yonoc[torch]').
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from paper_protocol import (  # noqa: E402
    PROTOCOL_BEGIN,
    PROTOCOL_END,
    image_main,
    protocol_main,
    table,
)

from yonoc.backend import image_format as fmt  # noqa: E402
from yonoc.compiler import build, learn_codebooks, load_models  # noqa: E402
from yonoc.options import BuildOptions  # noqa: E402
from yonoc.passes import em  # noqa: E402
from yonoc.pq.codebooks import CodebookOptions  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover

    def tqdm(it, **_):
        return it


MODES = ("int8", "pq-s", "pq-m", "pq-mopt", "yono")


def find_examples(folder):
    out = []
    for p in sorted(glob.glob(os.path.join(folder, "*.tflite"))):
        base = p[: -len(".tflite")]
        if os.path.isfile(base + ".train.npz") and os.path.isfile(base + ".test.npz"):
            out.append((os.path.basename(base), p, base + ".train.npz", base + ".test.npz"))
    return out


def accuracies(image: bytes, tests: dict) -> dict:
    img = fmt.read_image(image)
    out = {}
    for i, t in enumerate(img.tasks):
        model, x, y = tests[t.name]
        out[t.name] = em.accuracy(model, fmt.rebuild(img, i), x, y)
    return out


def run_mode(mode, examples, eps, em_opts, frozen=None, jobs=0):
    data = tuple((n, em.DataSpec(tr, te, None, eps)) for n, _, tr, te in examples)
    opts = BuildOptions(
        mode=mode,
        data=data if mode in ("yono", "pq-mopt") else (),
        em=em_opts,
        frozen_codebooks=frozen,
        check=False,
        jobs=jobs,
    )
    t = time.perf_counter()
    res = build([p for _, p, _, _ in examples], opts)
    return res, time.perf_counter() - t


def summarise(examples, results, originals, modes):
    names = [n for n, *_ in examples]
    acc_rows = []
    for n in names:
        acc_rows.append([n, f"{originals[n]:.2f}"] + [f"{results[m]['acc'][n]:.2f}" for m in modes])
    mean = lambda d: float(np.mean([d[n] for n in names]))  # noqa: E731
    acc_rows.append(
        ["**mean**", f"{mean(originals):.2f}"] + [f"{mean(results[m]['acc']):.2f}" for m in modes]
    )
    acc_rows.append(
        ["**loss vs original (pt)**", "0.00"]
        + [f"{mean(originals) - mean(results[m]['acc']):.2f}" for m in modes]
    )
    ratio_rows = []
    for n in names:
        row = [n]
        for m in modes:
            r = results[m]["models"][n]
            row.append(f"{r.weight_bytes / max(r.weight_image_bytes, 1):.2f}x")
        ratio_rows.append(row)

    def tot(m):
        models = results[m]["models"].values()
        return sum(r.weight_bytes for r in models), sum(r.weight_image_bytes for r in models)

    ratio_rows.append(["**all (weights)**"] + [f"{tot(m)[0] / tot(m)[1]:.2f}x" for m in modes])
    ratio_rows.append(
        ["**all (weights + codebooks)**"]
        + [f"{tot(m)[0] / (tot(m)[1] + results[m]['codebook_bytes']):.2f}x" for m in modes]
    )
    ratio_rows.append(
        ["**image (whole files)**"]
        + [f"{results[m]['orig_bytes'] / results[m]['image_bytes']:.2f}x" for m in modes]
    )
    ratio_rows.append(["build time (s)"] + [f"{results[m]['time']:.0f}" for m in modes])
    return acc_rows, ratio_rows


def verdict(examples, yono, originals, eps, bar_loss=0.5, bar_ratio=3.1):
    """One line against the issue's bar: mean loss, weight ratio, every model within eps."""
    names = [n for n, *_ in examples]
    loss = float(np.mean([originals[n] - yono["acc"][n] for n in names]))
    ratio = sum(yono["models"][n].weight_bytes for n in names) / sum(
        yono["models"][n].weight_image_bytes for n in names
    )
    outside = [n for n in names if originals[n] - yono["acc"][n] > eps + 1e-9]
    ok = loss <= bar_loss and ratio >= bar_ratio and not outside
    return (
        f"**yono against the bar** (mean loss <= {bar_loss} pt at >= {bar_ratio}x on int8 "
        f"weight bytes, every model within epsilon = {eps} pt): mean loss {loss:.2f} pt, "
        f"{ratio:.2f}x, "
        + (f"outside epsilon: {', '.join(outside)}" if outside else "every model within epsilon")
        + (" - **met**." if ok else " - **not met**.")
    )


def finetune_rows(examples, results, modes):
    rows = []
    for m in modes:
        for n, *_ in examples:
            r = results[m]["models"][n]
            if r.accuracy is None:
                continue
            rows.append(
                [
                    m,
                    n,
                    ", ".join(str(i) for i in r.finetuned) or "-",
                    r.rate_counts.get("raw", 0),
                    r.tensors,
                ]
            )
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models", default=os.path.join(os.path.dirname(__file__), "..", "examples", "models")
    )
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--epsilon", type=float, default=1.0, help="pt of accuracy per model")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument(
        "--unseen",
        nargs="*",
        default=None,
        help="models compressed with codebooks frozen from the others (default: the last example)",
    )
    ap.add_argument("--no-unseen", action="store_true")
    ap.add_argument(
        "--no-distill",
        action="store_true",
        help="skip the label-free (distillation) vs data-free comparison",
    )
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--write", help="write the tables as markdown here")
    ap.add_argument(
        "--protocol",
        action="store_true",
        help="only the yono build under the val/test protocol (issue 9)",
    )
    ap.add_argument("--loo", action="store_true", help="with --protocol: leave-one-out builds too")
    ap.add_argument(
        "--loo-only", action="store_true", help="with --protocol: only the leave-one-out builds"
    )
    ap.add_argument("--only", nargs="*", help="example names to use (default: all)")
    ap.add_argument(
        "--image", help="the protocol table of a finished `yonoc build --spec` image (no build)"
    )
    ap.add_argument("--log", help="with --image: the build's -v log (for the final S per model)")
    args = ap.parse_args(argv)
    if args.image:
        return image_main(args)

    examples = every = find_examples(args.models)
    if args.only:
        examples = [e for e in examples if e[0] in args.only]
    if not examples:
        sys.exit(f"no examples with .train.npz/.test.npz in {args.models}")
    if args.protocol:
        return protocol_main(args, examples, every)
    em_opts = em.EMOptions(epsilon=args.epsilon, epochs=args.epochs)
    models = {m.name: m for m in load_models([p for _, p, _, _ in examples])}
    tests = {}
    for n, _, _, te in examples:
        x, y = em.load_npz(te, need_labels=True)
        tests[n] = (models[n], em.model_inputs(models[n], x), y)
    originals = {n: em.accuracy(models[n], models[n].data, tests[n][1], tests[n][2]) for n in tests}

    results = {}
    for mode in tqdm(args.modes, desc="modes", unit="mode"):
        res, secs = run_mode(mode, examples, args.epsilon, em_opts, jobs=args.jobs)
        results[mode] = {
            "acc": accuracies(res.image, tests),
            "time": secs,
            "models": {r.name: r for r in res.models},
            "codebook_bytes": res.codebook_bytes,
            "image_bytes": len(res.image),
            "orig_bytes": sum(r.original_bytes for r in res.models),
        }
    acc_rows, ratio_rows = summarise(examples, results, originals, args.modes)
    out = [
        "# Paper tables on yonoc's examples",
        "",
        "Generated by `python bench/paper_tables.py --write docs/paper-tables.md` "
        f"(epsilon {args.epsilon} pt per model, {args.epochs} epochs per finetuning call). "
        "Accuracy (%) of every task rebuilt from the image, on its labelled test set, "
        "in the TFLM interpreter (int8).",
        "",
        "## Accuracy per model and mode (paper Fig. 3)",
        "",
        "![accuracy per model and mode](paper-tables.png)",
        "",
        table(acc_rows, ["model", "original"] + args.modes),
        "",
    ]
    if "yono" in results:
        out += [verdict(examples, results["yono"], originals, args.epsilon), ""]
    out += [
        "## Compression ratio (paper Table 2)",
        "",
        "Compressible int8 weight bytes / (index bytes + raw bytes); codebooks are shared "
        "by all tasks of an image.",
        "",
        table(ratio_rows, ["model"] + args.modes),
        "",
    ]
    ft = finetune_rows(examples, results, args.modes)
    if ft:
        out += [
            "## Layers finetuned and stored raw (Algorithm 1)",
            "",
            table(ft, ["mode", "model", "finetuned layers (S)", "raw tensors", "tensors"]),
            "",
        ]

    if not args.no_unseen and len(examples) > 1:
        unseen = args.unseen or [examples[-1][0]]
        seen = [e for e in examples if e[0] not in unseen]
        target = [e for e in examples if e[0] in unseen]
        with tempfile.TemporaryDirectory() as tmp:
            cb_path = os.path.join(tmp, "frozen.npz")
            cbs = learn_codebooks(load_models([p for _, p, _, _ in seen]), CodebookOptions())
            buf = io.BytesIO()
            cbs.to_npz(buf)
            with open(cb_path, "wb") as f:
                f.write(buf.getvalue())
            rows = []
            for mode in tqdm(("pq-m", "yono"), desc="unseen", unit="mode"):
                res, _ = run_mode(
                    mode, target, args.epsilon, em_opts, frozen=cb_path, jobs=args.jobs
                )
                acc = accuracies(res.image, {n: tests[n] for n, *_ in target})
                for r in res.models:
                    rows.append(
                        [
                            mode,
                            r.name,
                            f"{originals[r.name]:.2f}",
                            f"{acc[r.name]:.2f}",
                            f"{r.weight_bytes / max(r.weight_image_bytes, 1):.2f}x",
                            ", ".join(str(i) for i in r.finetuned) or "-",
                        ]
                    )
        out += [
            "## Unseen models (paper §4.4)",
            "",
            f"Codebooks learned on {', '.join(e[0] for e in seen)}, frozen, then used to "
            f"compress {', '.join(unseen)}.",
            "",
            table(
                rows, ["mode", "model", "original", "accuracy", "weight ratio", "finetuned layers"]
            ),
            "",
        ]
    if not args.no_distill:
        out += distill_section(examples, tests, originals, em_opts, args.jobs)
    text = "\n".join(out)
    print(text)
    if args.write:  # the protocol section (--protocol --write) survives a rewrite
        old = open(args.write).read() if os.path.isfile(args.write) else ""
        keep = ""
        if PROTOCOL_BEGIN in old and PROTOCOL_END in old:
            a, b = old.index(PROTOCOL_BEGIN), old.index(PROTOCOL_END) + len(PROTOCOL_END)
            keep = "\n" + old[a:b] + "\n"
        with open(args.write, "w") as f:
            f.write(text + "\n" + keep)
        _plot(args, examples, results, originals)


def distill_section(examples, tests, originals, em_opts, jobs):
    """yono mode without labels: data-free fidelity pass vs EM finetuning by distillation
    (train inputs as unlabelled data, judged on fidelity on the test inputs)."""
    paths = [p for _, p, _, _ in examples]
    results = {}
    for kind in tqdm(("data-free", "distill"), desc="label-free", unit="build"):
        data = (
            ()
            if kind == "data-free"
            else tuple((n, em.DataSpec(None, te, tr, None)) for n, _, tr, te in examples)
        )
        opts = BuildOptions(
            mode="yono", data=data, em=em_opts, check=True, jobs=jobs, measure_arena=False
        )
        res = build(paths, opts)
        results[kind] = ({r.name: r for r in res.models}, accuracies(res.image, tests))
    rows = []
    for n, *_ in examples:
        row = [n, f"{originals[n]:.2f}"]
        for kind in ("data-free", "distill"):
            r, acc = results[kind][0][n], results[kind][1][n]
            row += [
                f"{acc:.2f}",
                f"{r.weight_bytes / max(r.weight_image_bytes, 1):.2f}x",
                str(r.rate_counts.get("raw", 0)),
            ]
        rows.append(row)
    tot = {
        k: (
            sum(r.weight_bytes for r in v[0].values()),
            sum(r.weight_image_bytes for r in v[0].values()),
        )
        for k, v in results.items()
    }
    rows.append(
        ["**all**", ""]
        + sum(([" ", f"{tot[k][0] / tot[k][1]:.2f}x", ""] for k in ("data-free", "distill")), [])
    )
    return [
        "## Label-free: distillation vs the data-free fidelity pass",
        "",
        "yono mode, same fidelity target (20 dB output SNR, 99 % top-1 agreement). "
        "data-free: finer rates / raw chosen by TFLM measurements on sample inputs. "
        "distill: Algorithm 1 with the train inputs *without labels*, the original model "
        "as teacher, judged on fidelity on the test inputs. Accuracy is on the labelled "
        "test set (never used by either build).",
        "",
        table(
            rows,
            [
                "model",
                "original",
                "data-free acc",
                "data-free ratio",
                "data-free raw tensors",
                "distill acc",
                "distill ratio",
                "distill raw tensors",
            ],
        ),
        "",
    ]


def _plot(args, examples, results, originals):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)", file=sys.stderr)
        return
    names = [n for n, *_ in examples]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    w = 0.8 / (len(args.modes) + 1)
    ax.bar(np.arange(len(names)), [originals[n] for n in names], w, label="original")
    for k, m in enumerate(args.modes):
        ax.bar(
            np.arange(len(names)) + (k + 1) * w, [results[m]["acc"][n] for n in names], w, label=m
        )
    ax.set_xticks(np.arange(len(names)) + 0.4 - w / 2, names)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(os.path.splitext(args.write)[0] + ".png", dpi=120)


if __name__ == "__main__":
    main()
