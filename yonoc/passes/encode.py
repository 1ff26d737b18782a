"""Encode a model's weight tensors with a codebook set: codes and the rebuilt model bytes.

A tensor's *choice* is an index into its group's rates (coarsest first) or RAW (= -1): the
fidelity pass moves tensors to finer rates or raw; this module turns any choice into the rebuilt
model bytes. Turning codes into image records is the backend's job (backend/lower.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import quant
from ..ir import Layout, ModelIR, WeightTensor, replace
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
    rates: list[RateEncoding]  # coarsest first
    _raw: int | None = field(default=None, init=False, repr=False, compare=False)

    def bytes_at(self, choice: int) -> int:
        return self.raw_bytes() if choice == RAW else self.rates[choice].index_bytes

    def raw_bytes(self) -> int:
        """What the image pays for the tensor stored raw: its zero runs become ZERO records
        (backend), so a mostly-zero (pruned) tensor is nearly free raw and must not be coded
        for the bytes it seems to save."""
        if self._raw is None:
            self._raw = stored_raw_bytes(self.tensor.values)
        return self._raw

    def rebuilt_at(self, choice: int) -> np.ndarray:
        return self.tensor.values if choice == RAW else self.rates[choice].rebuilt

    def error_at(self, choice: int) -> float:
        return 0.0 if choice == RAW else self.rates[choice].sq_error


def stored_raw_bytes(values: np.ndarray) -> int:
    """Bytes left in the skeleton after ZERO records (one fill record per run) take the zero
    runs of at least MIN_ZERO_RUN bytes (backend/image_format.zero_fills)."""
    from ..backend.image_format import FILL_RECORD, MIN_ZERO_RUN

    z = np.asarray(values).reshape(-1) == 0
    d = np.diff(np.concatenate(([0], z.astype(np.int8), [0])))
    runs = np.flatnonzero(d == -1) - np.flatnonzero(d == 1)
    runs = runs[runs >= MIN_ZERO_RUN]
    return int(z.size - runs.sum() + FILL_RECORD.size * len(runs))


def set_layout(models: list[ModelIR], kernel_major: bool) -> list[ModelIR]:
    """The vector layout of every 3x3 kernel, an encoding option (the frontend reads the kernel
    geometry and leaves tensors in file order).

    Kernel-major (the paper's spatial grouping) only when asked. Measured on all models here
    (docs/benchmarks.md): kernel-major vectors gain only 0.4 dB weight SNR at 2 bits/weight and
    0.1 dB at 4, while the scatter makes a firmware rebuild several times slower; linear vectors
    decode at near memcpy speed.
    """
    layout = Layout.KERNEL_MAJOR if kernel_major else Layout.LINEAR
    for m in models:
        m.weights = [
            replace(w, layout=layout if w.kernel_positions > 1 else Layout.LINEAR)
            for w in m.weights
        ]
    return models


def channel_scales(t: WeightTensor) -> np.ndarray:
    """Per-element real scale, file order (per-channel along the quantised dimension)."""
    return quant.element_scales(t.shape, t.scales, t.quantized_dimension)


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


def encode_model(model: ModelIR, codebooks: CodebookSet) -> list[TensorEncodings]:
    return [encode_tensor(t, codebooks) for t in model.weights]


def rebuilt_model(
    model: ModelIR,
    encodings: list[TensorEncodings],
    choices: list[int],
    erase_names: bool,
    patches: dict[int, bytes] | None = None,
) -> bytes:
    """`patches` ({file offset: bytes}, e.g. finetuned int8 weights of RAW tensors and their
    int32 biases, from passes/em.py) are written last; they must not touch a PQ-coded
    tensor."""
    buf = bytearray(model.data)
    if erase_names:
        for off, length in model.erasable:
            buf[off : off + length] = bytes(length)
    for enc, choice in zip(encodings, choices):
        t = enc.tensor
        buf[t.offset : t.offset + t.size] = enc.rebuilt_at(choice).tobytes()
    for off, payload in (patches or {}).items():  # --- finetuning overrides (passes/em.py)
        for enc, choice in zip(encodings, choices):
            t = enc.tensor
            if choice != RAW and off < t.offset + t.size and t.offset < off + len(payload):
                raise ValueError(f"patch at {off} overlaps PQ-coded tensor {t.name!r}")
        buf[off : off + len(payload)] = payload
    return bytes(buf)


def coded(
    encodings: list[TensorEncodings], choices: list[int]
) -> list[tuple[WeightTensor, RateEncoding]]:
    """The PQ-coded tensors with their chosen rate (what the backend lowers to PQ records)."""
    return [(e.tensor, e.rates[c]) for e, c in zip(encodings, choices) if c != RAW]
