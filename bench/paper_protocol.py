"""The val/test protocol section of docs/paper-tables.md (issue 9), run by
`bench/paper_tables.py --protocol`: the yono build of the examples with val deciding and test
reported only, per model ratio, rates, val and test accuracy, layers finetuned; leave-one-out
builds (codebooks frozen from the other examples) with --loo. With --write only the section
between the markers is replaced; the rest of the file stays.
"""

from __future__ import annotations

import io
import os
import tempfile
import time

import numpy as np

from yonoc.compiler import build, learn_codebooks, load_models
from yonoc.options import BuildOptions
from yonoc.passes import em
from yonoc.pq.codebooks import CodebookOptions

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover

    def tqdm(it, **_):
        return it


def val_path(train_path):
    v = train_path[: -len(".train.npz")] + ".val.npz"
    return v if os.path.isfile(v) else None


def run_protocol(examples, eps, em_opts, frozen=None, jobs=0):
    data = tuple((n, em.DataSpec(tr, te, None, eps, val_path(tr))) for n, _, tr, te in examples)
    opts = BuildOptions(
        mode="yono",
        data=data,
        em=em_opts,
        frozen_codebooks=frozen,
        check=False,
        jobs=jobs,
        measure_arena=False,
    )
    t = time.perf_counter()
    res = build([p for _, p, _, _ in examples], opts)
    return res, time.perf_counter() - t


def _rates(r) -> str:
    return ", ".join(
        f"{n}x{k.replace('bpw', '')}" if k != "raw" else f"{n}xraw"
        for k, n in r.rate_counts.items()
    )


def protocol_rows(res):
    rows = []
    for r in res.models:
        rows.append(
            [
                r.name,
                f"{r.weight_bytes / max(r.weight_image_bytes, 1):.2f}x",
                _rates(r),
                f"{r.accuracy_original:.2f} -> {r.accuracy:.2f}",
                f"{r.test_accuracy_original:.2f} -> {r.test_accuracy:.2f}"
                if r.test_accuracy is not None
                else "-",
                ", ".join(str(i) for i in r.finetuned) or "-",
            ]
        )
    return rows


def protocol_verdict(res, eps, bar_loss=0.5, bar_ratio=4.0):
    ms = [r for r in res.models if r.test_accuracy is not None]
    loss = float(np.mean([r.test_accuracy_original - r.test_accuracy for r in ms]))
    ratio = sum(r.weight_bytes for r in ms) / sum(r.weight_image_bytes for r in ms)
    outside = [r.name for r in ms if r.accuracy_original - r.accuracy > eps + 1e-9]
    ok = loss <= bar_loss and ratio >= bar_ratio and not outside
    return (
        f"**against the bar** (>= {bar_ratio}x on int8 weight bytes at <= {bar_loss} pt "
        f"mean test loss, every model within epsilon = {eps} pt on val): {ratio:.2f}x, "
        f"mean test loss {loss:.2f} pt, "
        + (
            f"outside epsilon on val: {', '.join(outside)}"
            if outside
            else "every model within epsilon on val"
        )
        + (" - **met**." if ok else " - **not met**.")
    )


PROTOCOL_BEGIN, PROTOCOL_END = "<!-- protocol: begin -->", "<!-- protocol: end -->"


def image_main(args):
    """--image IMAGE [--log LOG]: the protocol table of a finished spec build."""
    rows, tot = image_rows(args.image, args.log)
    header = [
        "model",
        "weight ratio",
        "rates (count x bpw)",
        "val acc orig -> rebuilt",
        "test acc orig -> rebuilt",
        "finetuned (raw) layers",
    ]
    loss = float(np.mean(tot["loss"])) if tot["loss"] else float("nan")
    text = "\n".join(
        [
            table(rows, header),
            "",
            f"All {len(rows)}: **{tot['w'] / max(tot['img'], 1):.2f}x** on int8 weight bytes "
            f"({tot['w']:,} -> {tot['img']:,} bytes, codebooks not counted), mean test loss "
            f"**{loss:.2f} pt**, "
            + (
                f"outside epsilon on val: {', '.join(tot['outside'])}"
                if tot["outside"]
                else "every model within epsilon on val"
            )
            + ".",
        ]
    )
    print(text)
    return text


def protocol_main(args, examples, every):
    em_opts = em.EMOptions(epsilon=args.epsilon, epochs=args.epochs)
    header = [
        "model",
        "weight ratio",
        "rates (count x bpw)",
        "val acc orig -> rebuilt",
        "test acc orig -> rebuilt",
        "finetuned (raw) layers",
    ]
    res, secs = (
        run_protocol(examples, args.epsilon, em_opts, jobs=args.jobs)
        if not args.loo_only
        else (None, 0)
    )
    out = (
        []
        if res is None
        else [
            "## The val/test protocol (issue 9)",
            "",
            f"`python bench/paper_tables.py --protocol --epsilon {args.epsilon:g}`: yono mode, "
            f"one image of all {len(examples)} examples, epsilon {args.epsilon:g} pt per model "
            "judged on validation data (`<name>.val.npz`, else the test set split seeded "
            "half/half); test accuracy is reported only, never used by the build. Rates inside "
            f"Algorithm 1 (`rate_search`). Build time {secs:.0f} s (check off, "
            f"{args.jobs or 'all'} jobs).",
            "",
            table(protocol_rows(res), header),
            "",
            protocol_verdict(res, args.epsilon),
            "",
        ]
    )
    if args.loo or args.loo_only:
        rows = []
        for ex in tqdm(examples, desc="leave-one-out", unit="model"):
            others = [e for e in every if e[0] != ex[0]]  # every other example
            with tempfile.TemporaryDirectory() as tmp:
                cb_path = os.path.join(tmp, "frozen.npz")
                cbs = learn_codebooks(load_models([p for _, p, _, _ in others]), CodebookOptions())
                buf = io.BytesIO()
                cbs.to_npz(buf)
                with open(cb_path, "wb") as f:
                    f.write(buf.getvalue())
                r1, _ = run_protocol([ex], args.epsilon, em_opts, frozen=cb_path, jobs=1)
            rows += protocol_rows(r1)
        out += [
            "### Leave-one-out (codebooks frozen without the model)",
            "",
            "Each model compressed alone with codebooks learned on the other examples.",
            "",
            table(rows, header),
            "",
        ]
    text = "\n".join(out)
    print(text)
    if args.write:  # a section of its own between markers: the rest of the file stays
        write_section(args.write, text)


def write_section(path, text):
    """Replace the text between the protocol markers of `path` (append them if absent)."""
    block = PROTOCOL_BEGIN + "\n" + text + "\n" + PROTOCOL_END
    old = open(path).read() if os.path.isfile(path) else ""
    if PROTOCOL_BEGIN in old and PROTOCOL_END in old:
        a, b = old.index(PROTOCOL_BEGIN), old.index(PROTOCOL_END) + len(PROTOCOL_END)
        new = old[:a] + block + old[b:]
    else:
        new = old + ("\n" if old else "") + block + "\n"
    with open(path, "w") as f:
        f.write(new)


def table(rows, header):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def image_rows(image_path: str, log_path: str | None = None) -> tuple[list, dict]:
    """Protocol rows of a finished build (`yonoc build --spec ... -v`): ratio, rates, val and
    test accuracy from the image (fill records, build notes); the final S per model from the
    build's log (its last "EM S=[...]" line with the target met), "?" without a log."""
    import re
    from collections import Counter

    from yonoc.backend import image_format as fmt
    from yonoc.report import inspect_image

    info = inspect_image(fmt.read_image(open(image_path, "rb").read()), tensors=True)
    final_s = {}
    if log_path:
        for line in open(log_path):
            m = re.search(r"(\w+): EM S=\[([\d, ]*)\] -> .*target met", line)
            if m:
                final_s[m.group(1)] = m.group(2) or "-"
    rows, tot = [], {"w": 0, "img": 0, "loss": [], "outside": []}
    for m in info["models"]:
        rates = Counter(t["rate"] for t in m["tensors"])
        order = sorted(rates, key=lambda r: (r == "raw", 0 if r == "raw" else float(r[:-3])))
        val = (m["accuracy_original"], m["accuracy"])
        test = (m["test_accuracy_original"], m["test_accuracy"])
        rows.append(
            [
                m["name"],
                f"{m['weight_bytes'] / max(m['weight_image_bytes'], 1):.2f}x",
                ", ".join(f"{rates[r]}x{r.replace('bpw', '')}" for r in order),
                "-" if val[0] is None else f"{val[0]:.2f} -> {val[1]:.2f}",
                "-" if test[0] is None else f"{test[0]:.2f} -> {test[1]:.2f}",
                final_s.get(m["name"], "?" if log_path is None else "- (no EM step met it)"),
            ]
        )
        tot["w"] += m["weight_bytes"]
        tot["img"] += m["weight_image_bytes"]
        if test[0] is not None:
            tot["loss"].append(test[0] - test[1])
        if val[0] is not None and m.get("epsilon") is not None and val[0] - val[1] > m["epsilon"]:
            tot["outside"].append(m["name"])
    return rows, tot
