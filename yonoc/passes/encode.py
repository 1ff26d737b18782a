"""Encode a model's weight tensors with a codebook set and assemble its image task.

A tensor's *choice* is an index into its group's rates (coarsest first) or RAW (= -1): the
fidelity pass moves tensors to finer rates or raw; this module turns any choice into the rebuilt
model bytes and its fill records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend.image_format import Fill, FillKind, Task, zero_fills
from ..ir import ModelIR, WeightTensor
from ..pq.codebooks import CodebookSet, PQCodebook

RAW = -1


@dataclass
class RateEncoding:
    """One tensor encoded at one rate."""

    book: PQCodebook
    indices: np.ndarray  # uint8, one per sub-vector
    rebuilt: np.ndarray  # int8, file order
    sq_error: float  # sum of squared error in the real (scaled) weight domain
    index_bytes: int


@dataclass
class TensorEncodings:
    tensor: WeightTensor
    rates: list  # RateEncoding per rate, coarsest first

    def bytes_at(self, choice: int) -> int:
        return self.tensor.size if choice == RAW else self.rates[choice].index_bytes

    def rebuilt_at(self, choice: int) -> np.ndarray:
        return self.tensor.values if choice == RAW else self.rates[choice].rebuilt

    def error_at(self, choice: int) -> float:
        return 0.0 if choice == RAW else self.rates[choice].sq_error


def channel_scales(t: WeightTensor) -> np.ndarray:
    """Per-element real scale, file order (per-channel along the quantised dimension)."""
    if t.scales.size <= 1:
        return np.full(t.size, float(t.scales[0]) if t.scales.size else 1.0, np.float32)
    shape = t.shape
    axis = t.quantized_dimension if 0 <= t.quantized_dimension < len(shape) else 0
    if shape[axis] != t.scales.size:  # tolerate quantized_dimension quirks: find the axis
        matches = [a for a, d in enumerate(shape) if d == t.scales.size]
        if not matches:
            return np.full(t.size, float(np.mean(t.scales)), np.float32)
        axis = matches[0]
    bshape = [1] * len(shape)
    bshape[axis] = shape[axis]
    return np.broadcast_to(t.scales.reshape(bshape), shape).reshape(-1).astype(np.float32)


def encode_tensor(t: WeightTensor, codebooks: CodebookSet) -> TensorEncodings:
    v = t.vector_order()
    scale = channel_scales(t)
    rates = []
    for book in codebooks.rates(t.group):
        idx = book.encode(v)
        rebuilt = t.from_vector_order(book.decode(idx, t.size))
        err = (rebuilt.astype(np.float32) - t.values.astype(np.float32)) * scale
        rates.append(RateEncoding(book, idx, rebuilt, float(np.dot(err, err)), len(idx)))
    return TensorEncodings(t, rates)


def encode_model(model: ModelIR, codebooks: CodebookSet) -> list:
    return [encode_tensor(t, codebooks) for t in model.weights]


def rebuilt_model(model: ModelIR, encodings: list, choices: list, erase_names: bool,
                  patches: dict | None = None) -> bytes:
    """`patches` ({file offset: bytes}, e.g. finetuned int8 weights of RAW tensors and their
    int32 biases, from passes/em.py) are written last; they must not touch a PQ-coded
    tensor."""
    buf = bytearray(model.data)
    if erase_names:
        for off, length in model.erasable:
            buf[off:off + length] = bytes(length)
    for enc, choice in zip(encodings, choices):
        t = enc.tensor
        buf[t.offset:t.offset + t.size] = enc.rebuilt_at(choice).tobytes()
    for off, payload in (patches or {}).items():  # --- finetuning overrides (passes/em.py)
        for enc, choice in zip(encodings, choices):
            t = enc.tensor
            if choice != RAW and off < t.offset + t.size and t.offset < off + len(payload):
                raise ValueError(f"patch at {off} overlaps PQ-coded tensor {t.name!r}")
        buf[off:off + len(payload)] = payload
    return bytes(buf)


def make_task(model: ModelIR, encodings: list, choices: list, book_index: dict,
              erase_names: bool, arena_size: int = 0, patches: dict | None = None) -> Task:
    """The image task: rebuilt bytes, PQ records for coded tensors, ZERO records for zero runs.

    `book_index` maps id(PQCodebook) to the table index of its first sub-codebook.
    """
    model_bytes = rebuilt_model(model, encodings, choices, erase_names, patches)
    fills = []
    for enc, choice in zip(encodings, choices):
        if choice == RAW:
            continue
        t, rate = enc.tensor, enc.rates[choice]
        fills.append(Fill(
            dst_offset=t.offset, length=t.size, kind=FillKind.PQ, layout=int(t.layout),
            codebook_first=book_index[id(rate.book)], codebook_count=len(rate.book.subs),
            kernel_positions=t.kernel_positions if t.layout else 0,
            inner_channels=t.inner_channels if t.layout else 0,
            payload=rate.indices.tobytes()))
    fills += zero_fills(model_bytes, fills)
    fills.sort(key=lambda f: f.dst_offset)
    return Task(model.name, model_bytes, fills, arena_size, model.size)
