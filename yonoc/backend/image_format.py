"""The yonoc image: the one Python module that reads and writes its bytes.

The layout itself (offsets, sizes, enum values, limits) is defined once, in format_spec.py;
docs/image-format.md is the prose specification, checked against it by tests. The writer, the
reader/validator used by `inspect` and `extract`, and the reference rebuild all live here so
they cannot drift apart.
"""

from __future__ import annotations

import struct
import zlib
from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from ..errors import ImageError
from . import format_spec as spec
from .format_spec import (  # noqa: F401
    ALIGN,
    FORMAT_VERSION,
    MAGIC,
    MAX_CODEBOOKS,
    MAX_CODEWORDS,
    MAX_IMAGE_SIZE,
    MAX_NAME_LENGTH,
    MAX_SUBCODEBOOKS,
    MAX_SUBVECTOR_LEN,
    MAX_TASKS,
    TASK_FLAG_FLASH,
    TASK_FLAGS_KNOWN,
    FillKind,
    Layout,
)

MIN_ZERO_RUN = 32  # a ZERO record pays for itself on longer runs

HEADER = struct.Struct(spec.HEADER.struct_format)
CODEBOOK_ENTRY = struct.Struct(spec.CODEBOOK_ENTRY.struct_format)
TASK_ENTRY = struct.Struct(spec.TASK_ENTRY.struct_format)
FILL_RECORD = struct.Struct(spec.FILL_RECORD.struct_format)
CRC_AT = spec.HEADER.offset("crc32")
# the header's fields by name (reserved bytes are padding): read_header / Header(...).pack()
_HeaderFields = namedtuple(  # noqa: PYI024
    "_HeaderFields", [f.name for f in spec.HEADER.fields if f.name != "reserved"]
)


class Header(_HeaderFields):
    __slots__ = ()

    def pack(self) -> bytes:
        return HEADER.pack(*self)


def read_header(data: bytes) -> Header:
    return Header._make(HEADER.unpack_from(data, 0))


@dataclass
class CodebookEntry:
    group: int
    codewords: np.ndarray  # [K, s] values, stored as binary16

    @property
    def subvector_len(self) -> int:
        return int(self.codewords.shape[1])

    @property
    def count(self) -> int:
        return int(self.codewords.shape[0])


@dataclass
class Fill:
    """One fill record; `payload` is the RAW bytes or the PQ index bytes (PQ_RESIDUAL: the
    first stage's indices, then the residual stage's)."""

    dst_offset: int
    length: int
    kind: FillKind
    layout: int = 0
    codebook_first: int = 0
    codebook_count: int = 0
    kernel_positions: int = 0
    inner_channels: int = 0
    payload: bytes = b""
    residual_first: int = 0  # PQ_RESIDUAL only
    residual_count: int = 0


@dataclass
class Task:
    name: str
    model: bytes  # the rebuilt model (what extract returns); a flash task's flash model
    fills: list  # of Fill, sorted by dst_offset, not overlapping; [] for a flash task
    arena_size: int = 0  # in the mode the task is stored in
    original_size: int = 0
    flash: bool = False  # TASK_FLAG_FLASH: stored whole, runs in place (backend/flash.py)


@dataclass
class Image:
    """A parsed, validated image. `data` is the whole file."""

    data: bytes
    codebooks: list  # of CodebookEntry
    tasks: list  # of TaskView
    max_model_size: int
    max_arena_size: int
    notes: bytes = b""  # opaque build notes (see docs/image-format.md, "Build notes")


@dataclass
class TaskView:
    name: str
    model_size: int
    model_crc32: int
    skeleton_offset: int
    skeleton_size: int
    fills: list  # of Fill (payload filled in)
    arena_size: int
    original_size: int
    flash: bool = False  # TASK_FLAG_FLASH


def crc32(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def codeword_to_int8(values: np.ndarray) -> np.ndarray:
    """The spec's conversion: round half away from zero, clamp, NaN -> 0."""
    v = np.asarray(values, np.float32)
    v = np.where(np.isnan(v), 0.0, v)
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(r, -128, 127).astype(np.int8)


def zero_fills(model: bytes, fills: list, min_run: int = MIN_ZERO_RUN) -> list:
    """ZERO records for runs of zero bytes outside the given fills."""
    arr = np.frombuffer(model, np.uint8)
    covered = np.zeros(len(arr), bool)
    for f in fills:
        covered[f.dst_offset : f.dst_offset + f.length] = True
    z = (arr == 0) & ~covered
    # run boundaries
    d = np.diff(np.concatenate(([0], z.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    keep = ends - starts >= min_run
    return [Fill(int(s), int(e - s), FillKind.ZERO) for s, e in zip(starts[keep], ends[keep])]


def align(n: int) -> int:
    """Round up to the image's 16-byte section alignment (also that of the model region)."""
    return (n + ALIGN - 1) // ALIGN * ALIGN


class _Layout:
    """Assigns 16-aligned offsets to sections in a fixed order."""

    def __init__(self, start: int):
        self.end = start
        self.chunks = []

    def put(self, data: bytes) -> int:
        off = align(self.end)
        self.chunks.append((off, data))
        self.end = off + len(data)
        return off


def put_task(lay: _Layout, t: Task) -> bytes:
    """Lay out one task's name, skeleton, payloads and fill table; returns its task-table row.
    Shared by write_image and `yonoc add` (backend/append.py) so both serialise alike."""
    name = t.name.encode("utf-8")
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ImageError(f"task name {t.name!r}: 1..{MAX_NAME_LENGTH} UTF-8 bytes")
    name_off = lay.put(name + b"\0")
    if t.flash and t.fills:
        raise ImageError(f"task {t.name!r}: a flash task is stored whole, without fill records")
    fills = sorted(t.fills, key=lambda f: f.dst_offset)
    skeleton, cursor = [], 0
    for f in fills:
        if f.dst_offset < cursor or f.length <= 0 or f.dst_offset + f.length > len(t.model):
            raise ImageError(f"task {t.name!r}: overlapping or out-of-range fill records")
        skeleton.append(t.model[cursor : f.dst_offset])
        cursor = f.dst_offset + f.length
    skeleton.append(t.model[cursor:])
    skel = b"".join(skeleton)
    skel_off = lay.put(skel)
    rows = []
    for f in fills:
        src = lay.put(f.payload) if f.kind != FillKind.ZERO else 0
        res = f.kind == FillKind.PQ_RESIDUAL
        rows.append(
            FILL_RECORD.pack(
                f.dst_offset,
                f.length,
                f.kind,
                f.layout,
                f.codebook_count,
                f.residual_count if res else 0,
                f.codebook_first,
                f.kernel_positions,
                src,
                f.inner_channels,
                f.residual_first if res else 0,
            )
        )
    if t.flash:
        fill_off = 0  # the contract: a flash task has no fill table
    else:
        fill_off = lay.put(b"".join(rows)) if rows else align(lay.end)
    return TASK_ENTRY.pack(
        name_off,
        len(name),
        len(t.model),
        crc32(t.model),
        skel_off,
        len(skel),
        fill_off,
        len(fills),
        t.arena_size,
        TASK_FLAG_FLASH if t.flash else 0,
        t.original_size,
    )


def write_image(codebooks: list, tasks: list, notes: bytes = b"") -> bytes:
    """Serialise codebooks, tasks and the opaque build notes (placed last, so an image without
    notes is laid out exactly as before). Raises ImageError if a format limit is exceeded."""
    if not tasks:
        raise ImageError("an image needs at least one task")
    if len(tasks) > MAX_TASKS:
        raise ImageError(f"{len(tasks)} tasks: the format holds at most {MAX_TASKS}")
    if len(codebooks) > MAX_CODEBOOKS:
        raise ImageError(f"{len(codebooks)} codebooks: the format holds at most {MAX_CODEBOOKS}")
    cb_table = HEADER.size
    task_table = cb_table + CODEBOOK_ENTRY.size * len(codebooks)
    lay = _Layout(task_table + TASK_ENTRY.size * len(tasks))

    cb_rows = []
    for cb in codebooks:
        k, s = cb.codewords.shape
        if not (1 <= k <= MAX_CODEWORDS and 1 <= s <= MAX_SUBVECTOR_LEN):
            raise ImageError(
                f"codebook of {k}x{s}: K must be 1..{MAX_CODEWORDS} and s 1..{MAX_SUBVECTOR_LEN}"
            )
        blob = np.ascontiguousarray(cb.codewords, "<f2").tobytes()
        cb_rows.append(CODEBOOK_ENTRY.pack(cb.group, s, k, lay.put(blob), len(blob), 0))

    task_rows = [put_task(lay, t) for t in tasks]
    notes = bytes(notes)
    notes_off = lay.put(notes) if notes else 0
    size = align(lay.end)
    if size > MAX_IMAGE_SIZE:
        raise ImageError(f"image of {size} bytes exceeds the format's 4 GiB limit")
    buf = bytearray(size)
    buf[cb_table : cb_table + len(b"".join(cb_rows))] = b"".join(cb_rows)
    buf[task_table : task_table + len(b"".join(task_rows))] = b"".join(task_rows)
    for off, data in lay.chunks:
        buf[off : off + len(data)] = data
    max_model = max_rebuild_model(tasks)
    max_arena = max(t.arena_size for t in tasks)
    header = Header(
        magic=MAGIC,
        format_version=FORMAT_VERSION,
        header_size=HEADER.size,
        image_size=size,
        crc32=0,
        flags=0,
        codebook_count=len(codebooks),
        task_count=len(tasks),
        codebook_table_offset=cb_table,
        task_table_offset=task_table,
        max_model_size=max_model,
        max_arena_size=max_arena,
        notes_offset=notes_off,
        notes_size=len(notes),
    ).pack()
    buf[: HEADER.size] = header
    seal_crc(buf)
    return bytes(buf)


def max_rebuild_model(tasks) -> int:
    """The header's max_model_size: the largest REBUILD task's model (flash tasks need no
    model region); 0 when every task is flash."""
    return max((len(t.model) for t in tasks if not t.flash), default=0)


def seal_crc(buf: bytearray) -> None:
    """Write the header CRC of a finished image; every writer (build, `add`) ends with this."""
    struct.pack_into("<I", buf, CRC_AT, crc32(memoryview(buf)[spec.CRC_START :]))


def _span(image_size, off, length, what):
    if off < 0 or length < 0 or off + length > image_size:
        raise ImageError(f"corrupt image: {what} lies outside the image")


def read_image(data: bytes) -> Image:
    """Parse and fully validate an image (docs/image-format.md, 'Validation')."""
    data = bytes(data)
    if len(data) < HEADER.size:
        raise ImageError("not a yonoc image (too short)")
    h = read_header(data)
    magic, version, image_size, crc = h.magic, h.format_version, h.image_size, h.crc32
    n_cb, n_tasks = h.codebook_count, h.task_count
    cb_table, task_table = h.codebook_table_offset, h.task_table_offset
    notes_off, notes_size = h.notes_offset, h.notes_size
    max_model, max_arena = h.max_model_size, h.max_arena_size
    if magic != MAGIC:
        raise ImageError("not a yonoc image (bad magic)")
    if version != FORMAT_VERSION:
        raise ImageError(
            f"unsupported image format version {version} (this yonoc reads {FORMAT_VERSION})"
        )
    if h.header_size != HEADER.size or h.flags != 0:
        raise ImageError("corrupt image: bad header")
    if image_size > len(data) or image_size < HEADER.size:
        raise ImageError(f"truncated image: header says {image_size} bytes, file has {len(data)}")
    if crc32(memoryview(data)[spec.CRC_START : image_size]) != crc:
        raise ImageError("corrupt image: CRC-32 mismatch")
    if n_tasks < 1:
        raise ImageError("corrupt image: no tasks")
    if notes_size == 0 and notes_off != 0:
        raise ImageError("corrupt image: bad header (empty build notes with an offset)")
    _span(image_size, notes_off, notes_size, "build notes")
    _span(image_size, cb_table, CODEBOOK_ENTRY.size * n_cb, "codebook table")
    _span(image_size, task_table, TASK_ENTRY.size * n_tasks, "task table")

    codebooks = []
    for i in range(n_cb):
        at = cb_table + CODEBOOK_ENTRY.size * i
        group, s, k, off, size, _ = CODEBOOK_ENTRY.unpack_from(data, at)
        if not (1 <= s <= MAX_SUBVECTOR_LEN and 1 <= k <= MAX_CODEWORDS) or size != k * s * 2:
            raise ImageError(f"corrupt image: codebook {i} has bad dimensions")
        _span(image_size, off, size, f"codebook {i}")
        cw = np.frombuffer(data, "<f2", k * s, off).astype(np.float32).reshape(k, s)
        codebooks.append(CodebookEntry(group, cw))

    tasks = []
    for ti in range(n_tasks):
        at = task_table + TASK_ENTRY.size * ti
        (
            name_off,
            name_len,
            model_size,
            model_crc,
            skel_off,
            skel_size,
            fill_off,
            fill_count,
            arena,
            tflags,
            original,
        ) = TASK_ENTRY.unpack_from(data, at)
        if not 1 <= name_len <= MAX_NAME_LENGTH:
            raise ImageError(f"corrupt image: task {ti} has a bad name length")
        _span(image_size, name_off, name_len + 1, f"task {ti} name")
        if data[name_off + name_len] != 0 or 0 in data[name_off : name_off + name_len]:
            raise ImageError(f"corrupt image: task {ti} name is not a NUL-terminated string")
        try:
            name = data[name_off : name_off + name_len].decode("utf-8")
        except UnicodeDecodeError:
            raise ImageError(f"corrupt image: task {ti} name is not UTF-8") from None
        if tflags & ~TASK_FLAGS_KNOWN:
            raise ImageError(f"corrupt image: task {name!r} has unknown flags {tflags:#x}")
        flash = bool(tflags & TASK_FLAG_FLASH)
        if flash and (fill_count or fill_off or skel_size != model_size or skel_off % ALIGN):
            raise ImageError(f"corrupt image: flash task {name!r} is not stored whole")
        _span(image_size, skel_off, skel_size, f"task {name!r} skeleton")
        _span(image_size, fill_off, FILL_RECORD.size * fill_count, f"task {name!r} fill table")
        fills, cursor, filled = [], 0, 0
        for ri in range(fill_count):
            (dst, length, kind, layout, m, m2, first, p, src, inner, first2) = (
                FILL_RECORD.unpack_from(data, fill_off + FILL_RECORD.size * ri)
            )
            where = f"task {name!r} fill record {ri}"
            if length == 0 or dst < cursor or dst + length > model_size:
                raise ImageError(f"corrupt image: {where} is out of order or out of range")
            cursor = dst + length
            filled += length
            fill = Fill(dst, length, FillKind.ZERO, layout, first, m, p, inner)
            if kind in (FillKind.ZERO, FillKind.RAW) and layout != Layout.LINEAR:
                raise ImageError(f"corrupt image: {where} has a layout but is not PQ")
            if kind == FillKind.ZERO:
                pass
            elif kind == FillKind.RAW:
                _span(image_size, src, length, where)
                fill.kind, fill.payload = FillKind.RAW, data[src : src + length]
            elif kind in (FillKind.PQ, FillKind.PQ_RESIDUAL):
                kernel_major = layout == Layout.KERNEL_MAJOR
                if layout not in tuple(Layout) or (
                    kernel_major and (p < 1 or inner < 1 or length % (p * inner))
                ):
                    raise ImageError(f"corrupt image: {where} has a bad layout")
                stages = [(first, m)] + ([(first2, m2)] if kind == FillKind.PQ_RESIDUAL else [])
                at = src
                for sf, sm in stages:
                    at += _check_stage(data, image_size, codebooks, where, length, sf, sm, at)
                fill.kind, fill.payload = FillKind(kind), data[src:at]
                fill.residual_first, fill.residual_count = (
                    (first2, m2) if kind == FillKind.PQ_RESIDUAL else (0, 0)
                )
            else:
                raise ImageError(f"corrupt image: {where} has unknown kind {kind}")
            fills.append(fill)
        if (not flash and model_size > max_model) or arena > max_arena:
            raise ImageError(f"corrupt image: task {name!r} exceeds the header's maximum sizes")
        if filled + skel_size != model_size:
            raise ImageError(f"corrupt image: task {name!r} sizes do not add up")
        tasks.append(
            TaskView(
                name, model_size, model_crc, skel_off, skel_size, fills, arena, original, flash
            )
        )
    return Image(
        data[:image_size],
        codebooks,
        tasks,
        max_model,
        max_arena,
        data[notes_off : notes_off + notes_size],
    )


def _check_stage(data, image_size, codebooks, where, length, first, m, src) -> int:
    """Validate one PQ stage (M codebooks from `first`, its index array at `src`); returns
    the index array's length."""
    if not 1 <= m <= MAX_SUBCODEBOOKS or first + m > len(codebooks):
        raise ImageError(f"corrupt image: {where} names missing codebooks")
    s = codebooks[first].subvector_len
    if any(codebooks[first + j].subvector_len != s for j in range(m)):
        raise ImageError(f"corrupt image: {where} mixes sub-vector lengths")
    n = -(-length // s)
    _span(image_size, src, n, where)
    idx = np.frombuffer(data, np.uint8, n, src)
    ks = np.array([codebooks[first + j].count for j in range(m)])
    if np.any(idx >= ks[np.arange(n) % m]):
        raise ImageError(f"corrupt image: {where} has an index past its codebook")
    return n


def _decode_stage(idx: np.ndarray, codebooks: list, first: int, m: int, length: int) -> np.ndarray:
    tables = [codeword_to_int8(codebooks[first + j].codewords) for j in range(m)]
    s = tables[0].shape[1]
    n = -(-length // s)
    idx = idx[:n].astype(np.int64)
    out = np.empty((n, s), np.int8)
    for j in range(m):
        out[j::m] = tables[j][idx[j::m]]
    return out.reshape(-1)[:length]


def decode_pq(fill: Fill, codebooks: list) -> np.ndarray:
    """The int8 bytes a PQ or PQ_RESIDUAL record writes, in destination order."""
    idx = np.frombuffer(fill.payload, np.uint8)
    v = _decode_stage(idx, codebooks, fill.codebook_first, fill.codebook_count, fill.length)
    if fill.kind == FillKind.PQ_RESIDUAL:
        n = -(-fill.length // codebooks[fill.codebook_first].subvector_len)
        r = _decode_stage(idx[n:], codebooks, fill.residual_first, fill.residual_count, fill.length)
        v = np.clip(v.astype(np.int16) + r, -128, 127).astype(np.int8)  # saturating
    if fill.layout == Layout.KERNEL_MAJOR:
        p, i = fill.kernel_positions, fill.inner_channels
        v = v.reshape(-1, i, p).transpose(0, 2, 1).reshape(-1)
    return v


def rebuild(image: Image, index: int) -> bytes:
    """The task's model bytes, exactly as the firmware rebuilds them."""
    t = image.tasks[index]
    out = bytearray(t.model_size)
    data = image.data
    cursor, skel = 0, t.skeleton_offset
    for f in t.fills:
        gap = f.dst_offset - cursor
        out[cursor : f.dst_offset] = data[skel : skel + gap]
        skel += gap
        if f.kind == FillKind.RAW:
            out[f.dst_offset : f.dst_offset + f.length] = f.payload
        elif f.kind in (FillKind.PQ, FillKind.PQ_RESIDUAL):
            out[f.dst_offset : f.dst_offset + f.length] = decode_pq(f, image.codebooks).tobytes()
        cursor = f.dst_offset + f.length
    out[cursor:] = data[skel : skel + t.model_size - cursor]
    model = bytes(out)
    if crc32(model) != t.model_crc32:
        raise ImageError(f"corrupt image: task {t.name!r} rebuilds with a wrong CRC-32")
    return model
