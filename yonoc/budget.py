"""Flash and SRAM budget check (`yonoc build --target`, `--flash`, `--sram`).

The firmware keeps the image in flash and allocates in SRAM, for all tasks at once, one model
region (the largest rebuilt model of the rebuild-mode tasks; 0 when every task runs from flash),
one tensor arena (the largest task arena, each in its task's mode) and the codeword cache
(`firmware_sram`); `inspect`, the generated header and `--sram` use that one figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .backend import image_format as fmt
from .errors import BudgetError, MissingDependencyError, YonocError


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
            raise YonocError(
                f"unknown target {target!r} (known: {', '.join(sorted(TARGETS))}); "
                "or give --flash/--sram"
            )
        base = TARGETS[target.lower()]
    return Budget(
        base.name,
        parse_size(flash) if flash else base.flash,
        parse_size(sram) if sram else base.sram,
    )


@dataclass(frozen=True)
class SramNeed:
    """What the generated firmware allocates in SRAM for an image (bytes)."""

    model_region: int  # largest rebuild-mode model, 16-aligned (<P>_MODEL_REGION_SIZE)
    arena: int  # largest task arena in its mode (<P>_TENSOR_ARENA_SIZE)
    codeword_cache: int  # yono_image_codeword_cache_size() (<P>_CODEWORD_CACHE_SIZE)
    largest_model: str  # task names behind the first two figures
    largest_arena: str
    arena_measured: bool  # every task has a measured arena (else `arena` is a lower bound)

    @property
    def total(self) -> int:
        return self.model_region + self.arena + self.codeword_cache

    def parts(self) -> str:
        return (
            f"model region {self.model_region} B (largest model {self.largest_model}) + "
            f"tensor arena {self.arena} B (largest arena {self.largest_arena}) + codeword "
            f"cache {self.codeword_cache} B"
        )


def codeword_cache_size(image) -> int:
    """Exactly yono_image_codeword_cache_size() (runtime/src/image.cc): one slot per codebook,
    each as large as the largest codebook's K x s int8 codewords."""
    stride = max((int(c.codewords.size) for c in image.codebooks), default=0)
    return len(image.codebooks) * stride


def firmware_sram(image) -> SramNeed:
    """SRAM the generated firmware allocates for a parsed image (backend.image_format.Image)."""
    tasks = image.tasks
    rebuild = [t for t in tasks if not t.flash]
    big_model = max(rebuild, key=lambda t: t.model_size) if rebuild else None
    big_arena = max(tasks, key=lambda t: t.arena_size)
    return SramNeed(
        fmt.align(image.max_model_size),
        fmt.align(image.max_arena_size),
        codeword_cache_size(image),
        big_model.name if big_model else "none: every task runs from flash",
        big_arena.name,
        all(t.arena_size for t in tasks),
    )


def check(budget: Budget | None, image: bytes) -> None:
    """Raises BudgetError with a one-line report when the image does not fit; SRAM is what the
    firmware allocates (`firmware_sram`), so a budget of exactly that figure passes."""
    if budget is None:
        return
    from .backend.image_format import read_image

    problems = []
    if budget.flash is not None and len(image) > budget.flash:
        problems.append(
            f"image {len(image)} B > flash {budget.flash} B (fewer or smaller "
            "models, or a coarser --mode)"
        )
    if budget.sram is not None:
        parsed = read_image(image)
        need = firmware_sram(parsed)
        if not need.arena_measured:
            missing = [t.name for t in parsed.tasks if not t.arena_size]
            _cannot_check(budget, missing)
        if need.total > budget.sram:
            problems.append(
                f"SRAM needs {need.total} B = {need.parts()} > SRAM {budget.sram} B;"
                f" shrink or drop {need.largest_model} / {need.largest_arena}, "
                + ("run tasks from flash (--execute flash), " if need.model_region else "")
                + "or give a larger --sram"
            )
    if problems:
        raise BudgetError(f"does not fit {budget.name}: " + "; ".join(problems))


def _cannot_check(budget: Budget, missing: list) -> None:
    from .interpreter import tflm_available

    if not tflm_available():
        raise MissingDependencyError(
            f"cannot check SRAM against {budget.name}: tensor arenas are measured in the TFLM "
            "interpreter: pip install tflite-micro (or drop --sram/--target)"
        )
    raise BudgetError(
        f"cannot check SRAM against {budget.name}: the TFLM interpreter could not "
        f"allocate {', '.join(missing)}, so its tensor arena is unknown"
    )


def task_sram(task) -> int:
    """One task's own SRAM in its mode: model region (rebuild mode) + its arena."""
    return (0 if task.flash else fmt.align(task.model_size)) + fmt.align(task.arena_size)


def precheck(budget: Budget | None, paths: list, execution=None) -> None:
    """Before the long build: fail when even a lower bound of the SRAM need exceeds --sram.

    A rebuilt model holds every weight byte of the original, so its region is at least the
    weight bytes (tasks that may run from flash, `execution.may_flash`, need none); its arena
    is measured exactly as the build will (the original model has the rebuilt one's tensors;
    a flash task's arena is larger). The codeword cache is not known yet and counts as 0."""
    if budget is None or budget.sram is None:
        return
    from .frontend import read_model
    from .interpreter import measure_arena, tflm_available

    if not tflm_available():
        _cannot_check(budget, [])
    models = [read_model(p) for p in paths]
    if not models:
        return
    regions = {
        m.name: 0
        if execution is not None and execution.may_flash(m.name)
        else fmt.align(m.weight_bytes)
        for m in models
    }
    arenas = {m.name: measure_arena(m.data) for m in models}
    unknown = [n for n, a in arenas.items() if not a]
    if unknown:
        _cannot_check(budget, unknown)
    big_model = max(regions, key=regions.get)
    big_arena = max(arenas, key=arenas.get)
    need = regions[big_model] + arenas[big_arena]
    if need > budget.sram:
        raise BudgetError(
            f"does not fit {budget.name}: SRAM needs at least {need} B = model region >= "
            f"{regions[big_model]} B (weights of the largest model {big_model}) + tensor arena "
            f"{arenas[big_arena]} B (largest arena {big_arena}) > SRAM {budget.sram} B; drop or "
            "shrink those models, or give a larger --sram"
        )
