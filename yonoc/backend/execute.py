"""Which tasks run in flash mode (`--execute`, issue 14).

`rebuild` rebuilds a task's model into the SRAM model region at every switch; `flash` runs its
flash model in place and decodes each coded weight just before its layer (backend/flash.py).
`auto` (the default) keeps rebuild unless an SRAM budget is given and the image does not fit
it, then moves tasks to flash, largest SRAM saving first, until it fits. A task whose coded
weights feed an operator that needs constant weights always stays in rebuild mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..errors import YonocError
from .image_format import align

log = logging.getLogger("yonoc")

EXECUTE_MODES = ("rebuild", "flash", "auto")


@dataclass(frozen=True)
class Execution:
    """The --execute choice: a default for every task and per-task overrides."""

    default: str = "auto"
    per_task: tuple = ()  # ((task name, mode), ...)
    sram: int | None = None  # the --sram budget `auto` aims at

    def mode_of(self, name: str) -> str:
        return dict(self.per_task).get(name, self.default)

    def may_flash(self, name: str) -> bool:
        mode = self.mode_of(name)
        return mode == "flash" or (mode == "auto" and self.sram is not None)


def parse_execute(values, sram: int | None = None) -> Execution:
    """`--execute MODE` and/or `--execute NAME=MODE` (repeatable)."""
    default, per_task = "auto", {}
    for v in values or ():
        name, sep, mode = v.rpartition("=")
        mode = mode.strip().lower()
        if mode not in EXECUTE_MODES:
            raise YonocError(f"--execute {v!r}: expected {'|'.join(EXECUTE_MODES)} or NAME=MODE")
        if sep and not name:
            raise YonocError(f"--execute {v!r}: a task name before '='")
        if sep:
            per_task[name] = mode
        else:
            default = mode
    return Execution(default, tuple(sorted(per_task.items())), sram)


@dataclass
class TaskCost:
    """What a task needs in SRAM in each mode (bytes)."""

    name: str
    model_size: int  # rebuild mode: the model region holds this
    rebuild_arena: int
    flash_arena: int  # 0: not measured (flash mode not considered)
    blockers: list = field(default_factory=list)  # why it cannot run in flash mode
    largest_decoded: int = 0  # largest decoded weight tensor (bytes)

    @property
    def can_flash(self) -> bool:
        return not self.blockers and self.flash_arena > 0

    def sram(self, flash: bool) -> int:
        """The task's own SRAM in a mode: model region (rebuild) + arena."""
        return self.flash_arena if flash else align(self.model_size) + self.rebuild_arena


def firmware_need(costs: list, flash: list, cache: int) -> int:
    """The firmware's SRAM for these modes (budget.firmware_sram's rule): the largest rebuild
    model's region + the largest arena in its task's mode + the codeword cache."""
    region = max((align(c.model_size) for c, f in zip(costs, flash) if not f), default=0)
    arena = max(align(c.flash_arena if f else c.rebuild_arena) for c, f in zip(costs, flash))
    return region + arena + cache


def check_names(execution: Execution, names: list) -> None:
    """--execute NAME=MODE must name a task (checked before the long build)."""
    unknown = sorted(set(dict(execution.per_task)) - set(names))
    if unknown:
        raise YonocError(f"--execute names unknown task(s): {', '.join(unknown)}")


def choose(costs: list, execution: Execution, cache: int) -> tuple:
    """(flash flags per task, one reason line per task) for `execution`."""
    check_names(execution, [c.name for c in costs])
    flash, why = [], []
    for c in costs:
        mode = execution.mode_of(c.name)
        if mode == "flash" and not c.can_flash:
            reason = "; ".join(c.blockers) or "its flash-mode arena could not be measured"
            log.warning("%s: kept in rebuild mode: %s", c.name, reason)
            why.append(f"rebuild (flash asked, but {reason})")
            flash.append(False)
        else:
            flash.append(mode == "flash")
            why.append(f"{mode} (asked)" if mode != "auto" else "rebuild (auto: default)")
    if execution.sram is None:
        return flash, why
    auto = [i for i, c in enumerate(costs) if execution.mode_of(c.name) == "auto"]
    if firmware_need(costs, flash, cache) <= execution.sram:
        for i in auto:
            why[i] = "rebuild (auto: the image fits --sram in rebuild mode)"
        return flash, why
    movable = [i for i in auto if costs[i].can_flash]
    movable.sort(key=lambda i: (costs[i].sram(True) - costs[i].sram(False), costs[i].name))
    for i in movable:  # largest saving first
        if firmware_need(costs, flash, cache) <= execution.sram:
            break
        flash[i] = True
        saving = costs[i].sram(False) - costs[i].sram(True)
        why[i] = f"flash (auto: saves {saving} B of this task's SRAM to fit --sram)"
    need = firmware_need(costs, flash, cache)
    for i in auto:
        if not flash[i]:
            c = costs[i]
            why[i] = (
                f"rebuild (auto: {'; '.join(c.blockers)})"
                if c.blockers
                else "rebuild (auto: fits --sram once the larger ones run from flash)"
            )
        if need > execution.sram:
            why[i] += f"; the image still needs {need} B > --sram {execution.sram} B"
    return flash, why


def apply(tasks: list, results: list, codebooks: list, execution: Execution) -> list:
    """Choose each task's mode and turn the flash ones into flash tasks (flash model stored
    whole, its flash-mode arena); records the choice on the build results."""
    from types import SimpleNamespace

    from ..budget import codeword_cache_size
    from . import flash as flash_rewrite

    costs = [
        TaskCost(
            t.name,
            len(t.model),
            t.arena_size,
            r.flash_arena_size,
            list(r.flash_blockers),
            r.largest_decoded,
        )
        for t, r in zip(tasks, results)
    ]
    cache = codeword_cache_size(SimpleNamespace(codebooks=codebooks))
    flags, why = choose(costs, execution, cache)
    from .. import progress

    for t, r, f, w in zip(tasks, results, flags, why):
        r.execute, r.execute_reason = ("flash" if f else "rebuild"), w
        if f:
            rebuilt, kept = t.model, r.flash_raw_kept
            coded = flash_rewrite.decoded_buffers(t.model, t.fills, kept)
            t.model = flash_rewrite.flash_model(t.model, t.fills, kept)
            t.fills, t.flash, t.arena_size = [], True, r.flash_arena_size
            _self_check(t, rebuilt, coded, codebooks)
            if kept:
                w = r.execute_reason = f"{w}; {_kept_note(t.model)}"
        if f or execution.sram is not None:
            progress.note("%s: %s", t.name, w)
    return tasks


def _kept_note(flash_model: bytes) -> str:
    """The build log's words for the coded weights a flash task keeps raw (flash.measure)."""
    from .flash import raw_kept

    kept, cost = raw_kept(flash_model)
    return (
        f"{kept} coded weight(s) kept raw to meet the per-task SRAM bar "
        f"(flash arena <= rebuild arena + largest decoded weight): {cost:+d} B of flash"
    )


def _self_check(task, rebuilt: bytes, coded: list, codebooks: list) -> None:
    """Every decode op of the flash model decodes to the rebuild-mode bytes of its weight."""
    from .flash import decode_ops
    from .image_format import decode_pq

    ops = decode_ops(task.model)
    want = sorted(rebuilt[c.fill.dst_offset : c.fill.dst_offset + c.fill.length] for c in coded)
    got = sorted(decode_pq(op.fill, codebooks).tobytes() for op in ops)
    if len(ops) < len(coded) or not set(got) >= set(want) or not set(want) >= set(got):
        raise YonocError(f"internal error: flash task {task.name!r} does not decode exactly")


@dataclass
class _Costs:
    """The per-task figures `apply` reads from a build result."""

    flash_arena_size: int
    flash_blockers: list
    largest_decoded: int
    flash_raw_kept: int = 0
    execute: str = "rebuild"
    execute_reason: str = ""


def measure_tasks(image) -> tuple:
    """(rebuild-mode Tasks, their flash costs) of a parsed image whose tasks are all rebuild
    tasks: what a build measures before `apply` (flash.measure on each rebuilt model)."""
    from . import flash as flash_rewrite
    from .image_format import Task, rebuild

    tasks, costs = [], []
    for i, t in enumerate(image.tasks):
        if t.flash:
            raise YonocError(f"task {t.name!r} is already a flash task")
        model = rebuild(image, i)
        tasks.append(Task(t.name, model, list(t.fills), t.arena_size, t.original_size))
        cost = flash_rewrite.measure(model, t.fills, t.name, t.arena_size)
        costs.append(_Costs(cost.arena, cost.blockers, cost.largest, cost.raw_kept))
    return tasks, costs


def convert(image, execution: Execution, measured: tuple | None = None) -> bytes:
    """The image `yonoc build --execute ...` gives for the same inputs, from its rebuild-mode
    build (same codebooks, models and notes): bench/flash_mode.py, tests."""
    from .image_format import write_image

    tasks, costs = measured or measure_tasks(image)
    tasks = [type(t)(t.name, t.model, list(t.fills), t.arena_size, t.original_size) for t in tasks]
    return write_image(
        image.codebooks, apply(tasks, costs, image.codebooks, execution), image.notes
    )
