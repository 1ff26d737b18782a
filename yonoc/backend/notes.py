"""Build notes: the figures a firmware engineer needs that the image alone cannot give back.

Sizes, rates and shapes are recomputed from the image by `inspect`; what is lost once the
original models are gone is how faithful the build was: per model the measured output SNR,
top-1 agreement, how many check inputs were real, accuracies and the target; per weight
tensor the SNR of the stored weights against the original int8 ones and the output SNR the
tensor caused when coded alone (the sensitivity probe). They travel in the image's opaque
notes blob as fixed little-endian records (docs/image-format.md, "Build notes"): 28 bytes per
model (version 2: the held-out test accuracies appended; version 1, 24 bytes, is still read)
and 8 per weight tensor, deterministic, so the same build gives the same bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import ImageError

NOTES_VERSION = 2
HEADER = struct.Struct("<4sBBH")  # magic, version, reserved, model count
MODEL_V1 = struct.Struct("<HBBhHHHhhhHhh")  # 24 bytes
MODEL = struct.Struct("<HBBhHHHhhhHhhhh")  # 28 bytes: v1 + test accuracy original, rebuilt
TENSOR = struct.Struct("<Ihh")  # 8 bytes
MAGIC = b"YNTS"
assert (HEADER.size, MODEL_V1.size, MODEL.size, TENSOR.size) == (8, 24, 28, 8)

# fixed-point sentinels: i16 figures are hundredths (dB, percent, percentage points)
NONE16 = -0x8000
POS_INF16 = 0x7FFF
NEG_INF16 = -0x7FFF
NONE_U16 = 0xFFFF

CHECKED, HAS_ACCURACY, DISTILLED = 1, 2, 4


@dataclass
class TensorNote:
    offset: int  # the tensor's byte offset in the model (its PQ/raw record's dst_offset)
    weight_snr_db: float | None  # stored weights vs the original int8 weights (inf: exact)
    alone_snr_db: float | None  # output SNR with only this tensor coded, coarsest rate


@dataclass
class ModelNote:
    checked: bool = False  # a fidelity check ran (TFLM, original vs rebuilt)
    snr_db: float | None = None
    agreement: float | None = None  # top-1, fraction 0..1, on real inputs of a classifier
    real_inputs: int = 0
    generated_inputs: int = 0
    accuracy_original: float | None = None  # % on the test data (or None)
    accuracy: float | None = None  # % of the rebuilt model (SNR dB when distilled)
    distilled: bool = False
    target_snr_db: float | None = None
    target_agreement: float | None = None
    epsilon: float | None = None  # accuracy target (pt) of a model built with data
    held_out_snr_db: float | None = None
    # % on the held-out test data (reported only; the build decides on validation data)
    test_accuracy_original: float | None = None
    test_accuracy: float | None = None
    tensors: list = field(default_factory=list)  # of TensorNote, in model file order


def _q16(v, scale=100.0) -> int:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return NONE16
    if math.isinf(v):
        return POS_INF16 if v > 0 else NEG_INF16
    return int(max(-0x7FFE, min(0x7FFE, round(v * scale))))


def _d16(q: int, scale=100.0):
    if q == NONE16:
        return None
    if q == POS_INF16:
        return math.inf
    if q == NEG_INF16:
        return -math.inf
    return q / scale


def _qu16(v, scale=10000.0) -> int:
    return NONE_U16 if v is None else int(max(0, min(0xFFFE, round(v * scale))))


def _du16(q: int, scale=10000.0):
    return None if q == NONE_U16 else q / scale


def _count(n: int) -> int:
    return max(0, min(0xFFFF, int(n)))


def encode(models: list) -> bytes:
    """One blob for the image, models in task order."""
    out = [HEADER.pack(MAGIC, NOTES_VERSION, 0, len(models))]
    for m in models:
        flags = (
            (CHECKED if m.checked else 0)
            | (DISTILLED if m.distilled else 0)
            | (HAS_ACCURACY if m.accuracy is not None else 0)
        )
        out.append(
            MODEL.pack(
                _count(len(m.tensors)),
                flags,
                0,
                _q16(m.snr_db),
                _qu16(m.agreement),
                _count(m.real_inputs),
                _count(m.generated_inputs),
                _q16(m.accuracy_original),
                _q16(m.accuracy),
                _q16(m.target_snr_db),
                _qu16(m.target_agreement),
                _q16(m.epsilon),
                _q16(m.held_out_snr_db),
                _q16(m.test_accuracy_original),
                _q16(m.test_accuracy),
            )
        )
        out += [
            TENSOR.pack(t.offset, _q16(t.weight_snr_db), _q16(t.alone_snr_db))
            for t in m.tensors[:0xFFFF]
        ]
    return b"".join(out)


def decode(blob: bytes, task_count: int) -> list | None:
    """ModelNote per task, or None when the image carries no notes (--no-notes)."""
    if not blob:
        return None
    if len(blob) < HEADER.size:
        raise ImageError("corrupt image: build notes are truncated")
    magic, version, _, count = HEADER.unpack_from(blob, 0)
    if magic != MAGIC or version not in (1, NOTES_VERSION):
        return None  # notes of another kind or version: not ours to read, not an error
    record = MODEL if version == NOTES_VERSION else MODEL_V1
    if count != task_count:
        raise ImageError(f"corrupt image: build notes cover {count} models, image has {task_count}")
    pos, models = HEADER.size, []
    for _ in range(count):
        if pos + record.size > len(blob):
            raise ImageError("corrupt image: build notes are truncated")
        (n, flags, _, snr, agr, real, gen, acc0, acc, tsnr, tagr, eps, held, *test) = (
            record.unpack_from(blob, pos)
        )
        test = test or [NONE16, NONE16]
        pos += record.size
        if pos + n * TENSOR.size > len(blob):
            raise ImageError("corrupt image: build notes are truncated")
        tensors = [
            TensorNote(o, _d16(w), _d16(a))
            for o, w, a in TENSOR.iter_unpack(blob[pos : pos + n * TENSOR.size])
        ]
        pos += n * TENSOR.size
        models.append(
            ModelNote(
                checked=bool(flags & CHECKED),
                snr_db=_d16(snr),
                agreement=_du16(agr),
                real_inputs=real,
                generated_inputs=gen,
                accuracy_original=_d16(acc0),
                accuracy=_d16(acc),
                distilled=bool(flags & DISTILLED),
                target_snr_db=_d16(tsnr),
                target_agreement=_du16(tagr),
                epsilon=_d16(eps),
                held_out_snr_db=_d16(held),
                test_accuracy_original=_d16(test[0]),
                test_accuracy=_d16(test[1]),
                tensors=tensors,
            )
        )
    return models


def weight_snr_db(original: np.ndarray, stored: np.ndarray, scale: np.ndarray) -> float:
    """SNR of stored int8 weights against the original ones, in the real (scaled) domain."""
    o = original.astype(np.float64) * scale
    e = (stored.astype(np.float64) - original.astype(np.float64)) * scale
    noise, signal = float(np.dot(e, e)), float(np.dot(o, o))
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def tensor_notes(model, rebuilt: bytes, alone: dict | None) -> list:
    """TensorNote per weight tensor of `model` (ModelIR), from the bytes the image rebuilds;
    `alone` maps a tensor's index to its probe output SNR (dB) when it was measured."""
    from ..passes.encode import channel_scales

    notes = []
    for i, w in enumerate(model.weights):
        stored = np.frombuffer(rebuilt, np.int8, w.size, w.offset)
        notes.append(
            TensorNote(
                w.offset, weight_snr_db(w.values, stored, channel_scales(w)), (alone or {}).get(i)
            )
        )
    return notes


def model_note(
    model,
    rebuilt: bytes,
    measurement,
    real: int,
    generated: int,
    options,
    em_out=None,
    alone: dict | None = None,
) -> ModelNote:
    """The notes of one compiled model (compiler._compile_model's figures)."""
    note = ModelNote(
        checked=measurement is not None,
        real_inputs=real,
        generated_inputs=generated,
        tensors=tensor_notes(model, rebuilt, alone),
    )
    if measurement is not None:
        note.snr_db, note.agreement = measurement.snr_db, measurement.agreement
        note.target_snr_db = options.target.snr_db
        note.target_agreement = options.target.min_agreement if real else None
    if em_out is not None:
        note.accuracy_original, note.accuracy = em_out.original, em_out.final
        note.distilled = em_out.metric != "accuracy"
        note.test_accuracy_original = em_out.test_original
        note.test_accuracy = em_out.test_final
        if em_out.metric == "accuracy":  # judged on accuracy, not on the SNR target
            eps = dict(options.data)[model.name].epsilon
            note.epsilon = options.em.epsilon if eps is None else eps
            note.target_snr_db = note.target_agreement = None
        elif em_out.judged_by is not None:  # distilled: the target its steps were judged by
            note.target_snr_db = em_out.judged_by.snr_db
            note.target_agreement = em_out.judged_by.min_agreement
    return note
