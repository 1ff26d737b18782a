"""Flash and SRAM budget check (`yonoc build --target`, `--flash`, `--sram`).

The firmware keeps the image in flash and needs, at any time, one model region (the largest
rebuilt model) plus one tensor arena (the largest measured arena) in SRAM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import BudgetError, YonocError


@dataclass(frozen=True)
class Budget:
    name: str
    flash: int | None
    sram: int | None


KIB = 1024
# Memory left for yonoc's image and for model + arena; the paper restricts the STM32H747 to
# 1 MB flash and 512 KB SRAM (§3), the others are the parts' totals.
TARGETS = {
    "stm32h747": Budget("stm32h747", 1024 * KIB, 512 * KIB),
    "stm32f746": Budget("stm32f746", 1024 * KIB, 320 * KIB),
    "nrf52840": Budget("nrf52840", 1024 * KIB, 256 * KIB),
    "rp2040": Budget("rp2040", 2048 * KIB, 264 * KIB),
    "esp32s3": Budget("esp32s3", 8192 * KIB, 512 * KIB),
}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(i?[bB])?\s*", text or "")
    if not m:
        raise YonocError(f"{text!r}: expected a size such as 1M, 512K or 1048576")
    value = float(m.group(1)) * {"": 1, "k": KIB, "m": KIB * KIB}[m.group(2).lower()]
    return int(value)


def resolve(target: str | None, flash: str | None, sram: str | None) -> Budget | None:
    if target is None and flash is None and sram is None:
        return None
    base = Budget("custom", None, None)
    if target is not None:
        if target.lower() not in TARGETS:
            raise YonocError(f"unknown target {target!r} (known: {', '.join(sorted(TARGETS))}); "
                             "or give --flash/--sram")
        base = TARGETS[target.lower()]
    return Budget(base.name, parse_size(flash) if flash else base.flash,
                  parse_size(sram) if sram else base.sram)


def check(budget: Budget | None, image_bytes: int, tasks: list) -> None:
    """tasks: (name, model_bytes, arena_bytes). Raises BudgetError with a one-line report."""
    if budget is None:
        return
    problems = []
    if budget.flash is not None and image_bytes > budget.flash:
        problems.append(f"image {image_bytes} B > flash {budget.flash} B")
    if budget.sram is not None:
        for name, model, arena in tasks:
            if model + arena > budget.sram:
                problems.append(f"{name}: model {model} B + arena {arena} B > SRAM {budget.sram} B")
    if problems:
        raise BudgetError(f"does not fit {budget.name}: " + "; ".join(problems))
