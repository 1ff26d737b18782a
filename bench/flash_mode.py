#!/usr/bin/env python3
"""Flash mode vs rebuild mode (issue 14): per task, SRAM and arena in both modes, the largest
decoded weight tensor, the flash bytes a flash task costs, and which mode `--execute auto`
picks for an SRAM budget and why; per image, the firmware SRAM (the `inspect --json` figure)
with every task in rebuild mode and with every task in flash mode.

Each image is built once in rebuild mode (default options, or the --no-check/--jobs given);
the flash figures come from the same build (backend/execute.convert, byte-identical with
`yonoc build --execute flash`), so both modes hold the same codes.

    python bench/flash_mode.py [--sram 256K] [--no-check] [--image NAME=IMAGE.bin ...]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from yonoc.backend import execute, flash  # noqa: E402
from yonoc.backend import image_format as fmt  # noqa: E402
from yonoc.budget import parse_size  # noqa: E402
from yonoc.compiler import build  # noqa: E402
from yonoc.options import BuildOptions  # noqa: E402
from yonoc.report import inspect_image  # noqa: E402

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "models")
EXAMPLES = os.path.join(ROOT, "examples", "models")


def model_sets() -> dict:
    sets = {"examples": sorted(glob.glob(os.path.join(EXAMPLES, "*.tflite")))}
    shared = sorted(glob.glob(os.path.join(SHARED, "*", "*.tflite")))
    if shared:
        sets["shared/models"] = shared
    return sets


def sram_total(image: bytes) -> dict:
    return inspect_image(fmt.read_image(image))["sram"]


def table(name: str, image: bytes, sram: int | None) -> list:
    img = fmt.read_image(image)
    t0 = time.perf_counter()
    tasks, costs = execute.measure_tasks(img)
    measured = time.perf_counter() - t0
    flash_img = execute.convert(img, execute.parse_execute(["flash"]), (tasks, costs))
    flash_parsed = fmt.read_image(flash_img)
    auto = execute.parse_execute([], sram)
    cache = sram_total(image)["codeword_cache_bytes"]
    task_costs = [
        execute.TaskCost(
            t.name,
            len(t.model),
            t.arena_size,
            c.flash_arena_size,
            c.flash_blockers,
            c.largest_decoded,
        )
        for t, c in zip(tasks, costs)
    ]
    picks, why = execute.choose(task_costs, auto, cache)
    rows = [
        f"### {name}: {len(tasks)} tasks",
        "",
        "| task | rebuild SRAM (region + arena) | rebuild arena | flash arena = flash SRAM "
        "| largest decoded | bar: flash <= rebuild arena + largest | coded weights kept raw "
        "(flash B) | flash model vs rebuild in image | auto at "
        + (f"--sram {sram}" if sram else "no --sram")
        + " |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    met = kept_all = 0
    for k, (t, c, tc) in enumerate(zip(tasks, costs, task_costs)):
        ft = flash_parsed.tasks[k]
        bar = tc.flash_arena <= t.arena_size + c.largest_decoded if tc.can_flash else None
        met += bool(bar)
        over = tc.flash_arena - t.arena_size - c.largest_decoded
        bar_s = "-" if bar is None else ("yes" if bar else f"**no** (+{over} B)")
        kept, kept_bytes = flash.raw_kept(fmt.rebuild(flash_parsed, k)) if ft.flash else (0, 0)
        kept_s = f"{kept}/{len(flash.coded_buffers(t.model, t.fills))}"
        kept_s += f" ({kept_bytes:+d})" if kept else ""
        kept_all += kept
        reb_in_image = fmt.align(sum(len(f.payload) for f in t.fills)) + fmt.align(
            len(t.model) - sum(f.length for f in t.fills)
        )
        rows.append(
            f"| {t.name} | {tc.sram(False)} | {t.arena_size} | "
            f"{tc.flash_arena if tc.can_flash else '-'} | {c.largest_decoded} | {bar_s} | "
            f"{kept_s} | {ft.model_size} vs ~{reb_in_image} | {why[k]} |"
        )
    reb, fl = sram_total(image), sram_total(flash_img)
    picked = sum(picks)
    auto_need = execute.firmware_need(task_costs, picks, cache)
    auto_line = (
        f"`--execute auto --sram {sram}`: {picked}/{len(tasks)} tasks in flash mode, firmware "
        f"SRAM {auto_need} B ({'fits' if auto_need <= sram else 'does not fit'})."
        if sram
        else ""
    )
    ratio = fl["total_bytes"] / reb["total_bytes"]
    rows += [
        "",
        f"Firmware SRAM (`inspect --json` sram.total_bytes): rebuild mode {reb['total_bytes']} B "
        f"(model region {reb['model_region_bytes']} + arena {reb['arena_bytes']} + cache "
        f"{reb['codeword_cache_bytes']}); flash mode {fl['total_bytes']} B (arena "
        f"{fl['arena_bytes']}, {fl['largest_arena']} + cache {fl['codeword_cache_bytes']}): "
        f"**{100 * ratio:.1f} %** of rebuild mode (bar <= 60 %). Per-task bar met by "
        f"{met}/{sum(tc.can_flash for tc in task_costs)} tasks ({kept_all} coded weights "
        f"kept raw for it). Image: {len(image)} B rebuild "
        f"mode, {len(flash_img)} B flash mode (+{len(flash_img) - len(image)} B: flash models "
        f"keep their zero runs, which rebuild mode stores as ZERO records). Flash arenas "
        f"measured in {measured:.1f} s. {auto_line}",
        "",
    ]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sram", help="SRAM budget for the auto column, e.g. 256K")
    p.add_argument("--no-check", action="store_true", help="build without the fidelity check")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="NAME=IMAGE",
        help="use an existing rebuild-mode image instead of building NAME's models",
    )
    p.add_argument("--only", help="only this model set (examples or shared/models)")
    args = p.parse_args(argv)
    sram = parse_size(args.sram) if args.sram else None
    given = dict(v.split("=", 1) for v in args.image)
    out = []
    for name, paths in model_sets().items():
        if args.only and name != args.only:
            continue
        if name in given:
            with open(given.pop(name), "rb") as f:
                image = f.read()
            how = "given image"
        else:
            t0 = time.perf_counter()
            opts = BuildOptions(check=not args.no_check, jobs=args.jobs)
            image = build(paths, opts, execute.parse_execute(["rebuild"])).image
            how = f"built in {time.perf_counter() - t0:.0f} s"
        print(f"{name}: {how}", file=sys.stderr)
        out += table(name, image, sram)
    for name, path in given.items():
        with open(path, "rb") as f:
            out += table(name, f.read(), sram)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
