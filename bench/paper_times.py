"""Where a spec build's time goes, per model, from its timestamped -v log.

    yonoc build --spec examples/spec.toml -o image.bin -j 2 -v 2>&1 \\
        | python bench/paper_times.py --stamp > build.log     # each line prefixed HH:MM:SS
    python bench/paper_times.py build.log

Prints, per model in the order they started: when its first line appeared (seconds after
the log's first line), its wall time up to its summary line, and the EM pass's own figures
(`EMOutcome.cost`: finetune calls and seconds, TFLM evaluations and seconds, fallback).
"""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime

LINE = re.compile(r"(\d\d:\d\d:\d\d) yonoc: (\w+): (.*)")


def model_times(path: str) -> list[tuple]:
    """[(model, start s, wall s, EM cost text)] from a timestamped build log."""
    first, last, summary, cost = {}, {}, {}, {}
    t0 = None
    for line in open(path):
        m = LINE.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%H:%M:%S")
        t0 = t0 or t
        name, msg = m.group(2), m.group(3)
        if name in ("k", "codebooks", "learning"):  # build-wide phases, not models
            continue
        first.setdefault(name, t)
        last[name] = t
        if msg.startswith("EM cost"):
            cost[name] = msg.removeprefix("EM cost: ")
        if "weight bytes" in msg:
            summary[name] = t
    rows = []
    for n in sorted(first, key=lambda n: first[n]):
        end = summary.get(n, last[n])
        rows.append((n, (first[n] - t0).seconds, (end - first[n]).seconds, cost.get(n, "")))
    return rows


def stamp() -> None:
    """Copy stdin to stdout, each line prefixed with the wall-clock time it arrived."""
    for line in sys.stdin:
        sys.stdout.write(time.strftime("%H:%M:%S ") + line)
        sys.stdout.flush()


def main(argv=None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if args == ["--stamp"]:
        return stamp()
    if len(args) != 1:
        sys.exit(__doc__)
    print("| model | starts at | wall | EM: finetune calls, TFLM evaluations, fallback |")
    print("|---|---:|---:|---|")
    for n, start, wall, cost in model_times(args[0]):
        print(f"| {n} | +{start} s | {wall} s | {cost} |")


if __name__ == "__main__":
    main()
