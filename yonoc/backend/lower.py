"""Lower a model's codes and choices (passes/encode.py) to its image task and fill records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ir import ModelIR, WeightTensor
from .image_format import Fill, FillKind, Task, zero_fills

if TYPE_CHECKING:
    from ..passes.encode import RateEncoding


def lower_task(
    model: ModelIR,
    model_bytes: bytes,
    coded: list[tuple[WeightTensor, RateEncoding]],
    book_index: dict[int, int],
    arena_size: int = 0,
) -> Task:
    """The image task: `model_bytes` (the rebuilt model), a PQ record per coded tensor and
    ZERO records for the zero runs left.

    `coded`: (tensor, chosen rate) pairs; `book_index` maps id(PQCodebook) to the table index
    of its first sub-codebook.
    """
    fills = []
    for t, rate in coded:
        kernel_major = bool(t.layout)
        book, base = rate.book, rate.book.base
        first = base if base is not None else book  # a residual rate: base stage first
        fills.append(
            Fill(
                dst_offset=t.offset,
                length=t.size,
                kind=FillKind.PQ if base is None else FillKind.PQ_RESIDUAL,
                layout=int(t.layout),
                codebook_first=book_index[id(first)],
                codebook_count=len(first.subs),
                kernel_positions=t.kernel_positions if kernel_major else 0,
                inner_channels=t.inner_channels if kernel_major else 0,
                payload=rate.indices.tobytes(),
                residual_first=book_index[id(book)] if base is not None else 0,
                residual_count=len(book.subs) if base is not None else 0,
            )
        )
    fills += zero_fills(model_bytes, fills)
    fills.sort(key=lambda f: f.dst_offset)
    return Task(model.name, model_bytes, fills, arena_size, model.size)
