"""Regenerates tests/fuzz/regressions/ from the Python writer (run after a format change:
`python tests/fuzz/make_regressions.py`); tests/test_fuzz.py fails when the files are stale.

Each file is a valid image except for the one lie it is named after, so the reader gets past
every earlier check and the regression keeps exercising the check it was added for.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from yonoc.backend import format_spec as spec  # noqa: E402
from yonoc.backend import image_format as fmt  # noqa: E402


def _name_with_nul() -> bytes:
    """A task name with a NUL inside: C code would see a shorter name than name_length."""
    books = [fmt.CodebookEntry(0, np.arange(-8, 8, dtype=np.float32).reshape(4, 4))]
    pq = fmt.Fill(16, 8, fmt.FillKind.PQ, 0, 0, 1, payload=bytes([1, 3]))
    model = bytearray(range(1, 97)) + bytes(64)
    model[16:24] = fmt.decode_pq(pq, books).tobytes()
    model = bytes(model)
    fills = [pq, fmt.Fill(40, 8, fmt.FillKind.RAW, payload=model[40:48])]
    fills += fmt.zero_fills(model, fills)
    data = bytearray(fmt.write_image(books, [fmt.Task("ab_cd", model, fills)]))
    task_table = struct.unpack_from("<I", data, spec.HEADER.offset("task_table_offset"))[0]
    name_off = struct.unpack_from("<I", data, task_table + spec.TASK_ENTRY.offset("name_offset"))[0]
    data[name_off + 2] = 0
    crc = fmt.crc32(bytes(data[spec.CRC_START :]))
    struct.pack_into("<I", data, spec.HEADER.offset("crc32"), crc)
    return bytes(data)


def _residual(bad_index: bool = False) -> bytes:
    """PQ_RESIDUAL records (linear and kernel-major) whose sums saturate at both ends: a valid
    image that the replay rebuilds through every path; with `bad_index`, one residual index is
    past its codebook (K = 3), which the reader must refuse (kBadIndex)."""
    base = np.array(
        [[120, -120, 5, -5], [0, 1, 2, 3], [-128, 127, 64, -64], [7, 7, 7, 7]], np.float32
    )
    res = np.array([[20, -20], [-9, 9], [0, 1]], np.float32)
    books = [fmt.CodebookEntry(0, base), fmt.CodebookEntry(0, res)]
    r_lin = fmt.Fill(
        16,
        8,
        fmt.FillKind.PQ_RESIDUAL,
        0,
        0,
        1,
        payload=bytes([0, 2, 0, 1, 2, 0]),
        residual_first=1,
        residual_count=1,
    )
    r_km = fmt.Fill(
        48,
        12,
        fmt.FillKind.PQ_RESIDUAL,
        1,
        0,
        1,
        3,
        2,
        payload=bytes([2, 0, 3, 0, 1, 2, 0, 1, 1]),
        residual_first=1,
        residual_count=1,
    )
    model = bytearray(range(1, 97)) + bytes(64)
    for f in (r_lin, r_km):
        model[f.dst_offset : f.dst_offset + f.length] = fmt.decode_pq(f, books).tobytes()
    model = bytes(model)
    fills = [r_lin, r_km]
    fills += fmt.zero_fills(model, fills)
    data = bytearray(fmt.write_image(books, [fmt.Task("residual", model, fills)]))
    if bad_index:
        at = data.index(bytes(r_lin.payload))
        data[at + 5] = 3  # a residual index (K = 3)
        struct.pack_into(
            "<I", data, spec.HEADER.offset("crc32"), fmt.crc32(bytes(data[spec.CRC_START :]))
        )
    return bytes(data)


def _flash(flags: int | None = None, task: int = 1) -> bytes:
    """A rebuild task with fill records and a flash task (format v4) larger than the header's
    max_model_size (allowed: it needs no model region); with `flags`, task `task`'s flags are
    replaced: 0x2 is an unknown bit, TASK_FLAG_FLASH on the rebuild task (index 0) claims a
    whole model where there are fill records; the reader must refuse both."""
    books = [fmt.CodebookEntry(0, np.arange(-8, 8, dtype=np.float32).reshape(4, 4))]
    pq = fmt.Fill(16, 8, fmt.FillKind.PQ, 0, 0, 1, payload=bytes([1, 3]))
    model = bytearray(range(1, 97))
    model[16:24] = fmt.decode_pq(pq, books).tobytes()
    tasks = [
        fmt.Task("rebuild", bytes(model), [pq], 64),
        fmt.Task("flash", bytes(range(200)), [], 512, flash=True),
    ]
    data = bytearray(fmt.write_image(books, tasks))
    if flags is not None:
        table = struct.unpack_from("<I", data, spec.HEADER.offset("task_table_offset"))[0]
        at = table + spec.TASK_ENTRY.size * task + spec.TASK_ENTRY.offset("flags")
        struct.pack_into("<I", data, at, flags)
        fmt.seal_crc(data)
    return bytes(data)


REGRESSIONS = {
    "flash-valid.bin": _flash,
    "flash-unknown-task-flag.bin": lambda: _flash(flags=0x2),
    "flash-flag-on-a-task-with-fills.bin": lambda: _flash(flags=spec.TASK_FLAG_FLASH, task=0),
    "name-with-nul.bin": _name_with_nul,
    "residual-valid.bin": _residual,
    "residual-index-past-k.bin": lambda: _residual(bad_index=True),
}


def main() -> None:
    for name, make in REGRESSIONS.items():
        (HERE / "regressions" / name).write_bytes(make())


if __name__ == "__main__":
    main()
