"""`yonoc add`: code one more model with an image's own (frozen) codebooks and append it.

An image keeps only the sub-codebooks its tasks use (compiler.drop_unused_codebooks), so the new
model gets exactly the rates some existing task was coded at: the codebooks are recovered from
the PQ records (first sub-codebook, M; a flash task's are its decode ops' records) and nothing
is re-learned. The new task is appended
(backend/append.py): existing tasks keep their index and bytes; `add` does not sort.
"""

from __future__ import annotations

from .backend import image_format as fmt
from .backend import notes as build_notes
from .backend.append import append_task
from .compiler import choose_layouts, compile_model, load_models
from .errors import YonocError
from .ir import Group
from .options import BuildOptions
from .pq.codebooks import CodebookSet, PQCodebook
from .workers import one_blas_thread


def image_codebooks(image: fmt.Image):
    """(CodebookSet coarsest rate first per group, each book's first table index).

    A PQ_RESIDUAL record (6 bpw: base stage + residual stage) names two books: its base rate
    (kept as an ordinary rate too) and a residual rate on top of it. With several books at one
    (group, rate) (a pq-s image: per-model codebooks) the first in table order is used.
    """
    firsts, residuals = set(), set()
    for i in range(len(image.tasks)):
        for f in _records(image, i):
            if f.kind in (fmt.FillKind.PQ, fmt.FillKind.PQ_RESIDUAL):
                firsts.add((f.codebook_first, f.codebook_count))
            if f.kind == fmt.FillKind.PQ_RESIDUAL:
                residuals.add((f.residual_first, f.residual_count, f.codebook_first))
    by_first, by_rate = {}, {}  # table index -> book; (group, s, base s) -> (book, index)

    def book_at(first, count, base=None):
        e = image.codebooks[first]
        subs = [image.codebooks[first + j].codewords for j in range(count)]
        return PQCodebook(Group(e.group), e.subvector_len, subs, base)

    for first, count in sorted(firsts):
        e = image.codebooks[first]
        if e.group not in (Group.CONV3X3, Group.POINTWISE):
            continue
        by_first[first] = book_at(first, count)
        by_rate.setdefault((e.group, e.subvector_len, 0), (by_first[first], first))
    for first, count, base_first in sorted(residuals):
        base = by_first.get(base_first)
        if base is None:
            continue
        key = (base.group, image.codebooks[first].subvector_len, base.subvector_len)
        if key in by_rate or by_rate[(base.group, base.subvector_len, 0)][0] is not base:
            continue  # another residual at this rate, or on a base the new model won't use
        by_rate[key] = (book_at(first, count, base), first)
    books = [by_rate[k] for k in sorted(by_rate, key=lambda k: (k[0], -k[1]))]
    return CodebookSet([b for b, _ in books]), [first for _, first in books]


def _records(image: fmt.Image, index: int) -> list:
    """A task's PQ records: its fill records, or a flash task's decode-op records."""
    t = image.tasks[index]
    if not t.flash:
        return t.fills
    from .backend.flash import decode_ops

    return [op.fill for op in decode_ops(fmt.rebuild(image, index))]


@one_blas_thread
def add(image_bytes: bytes, model_path: str, options: BuildOptions):
    """(new image bytes, ModelResult of the added model)."""
    image = fmt.read_image(image_bytes)
    (model,) = choose_layouts(load_models([model_path]), options.kernel_major)
    if model.name in {t.name for t in image.tasks}:
        raise YonocError(
            f"the image already has a task named {model.name!r}: task names come "
            "from file names, rename the new model"
        )
    unknown = {name for name, _ in options.samples} - {model.name}
    if unknown:
        raise YonocError(f"--samples names unknown model(s): {', '.join(sorted(unknown))}")
    if options.mode == "int8":
        books, firsts = CodebookSet([]), []
    else:
        books, firsts = image_codebooks(image)
    task, result = compile_model(model, books, firsts, options)
    blob = b""
    if options.notes:
        old = build_notes.decode(image.notes, len(image.tasks))
        old = old or [build_notes.ModelNote() for _ in image.tasks]
        blob = build_notes.encode(old + [result.notes])
    new = append_task(image, task, blob)
    parsed = fmt.read_image(new)  # self-check: what the firmware will see
    if fmt.rebuild(parsed, len(parsed.tasks) - 1) != task.model:
        raise YonocError(f"internal error: task {task.name!r} does not rebuild exactly")
    return new, result
