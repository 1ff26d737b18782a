"""Append one task to an existing image so that a firmware can update flash with a small delta
(`yonoc add`, docs/image-format.md "Appending a task").

Only the 64-byte header changes; every other byte of the old image stays where it was. The new
task's sections, a new task table (the old rows unchanged, the new row last) and new build
notes are appended after the old image's end. The old task table and old notes stay behind as
unreferenced bytes (readers follow the header's offsets only), which costs 64 B per task and the
old notes per `add`. Records and sections are serialised exactly as `image_format.write_image`
does, with its structs.
"""

from __future__ import annotations

import struct

from . import image_format as fmt

HEADER_BYTES = fmt.HEADER.size


def append_task(image: fmt.Image, task: fmt.Task, notes: bytes = b"") -> bytes:
    """The old image's bytes with `task` appended (index len(image.tasks)); header rewritten."""
    old = image.data
    if len(image.tasks) + 1 > fmt.MAX_TASKS:
        raise fmt.ImageError(f"the format holds at most {fmt.MAX_TASKS} tasks")
    name = task.name.encode("utf-8")
    if not 1 <= len(name) <= fmt.MAX_NAME_LENGTH:
        raise fmt.ImageError(f"task name {task.name!r}: 1..{fmt.MAX_NAME_LENGTH} UTF-8 bytes")
    (magic, version, header_size, _, _, flags, n_cb, n_tasks, cb_table, task_table, max_model,
     max_arena, _, _) = fmt.HEADER.unpack_from(old, 0)
    lay = fmt._Layout(len(old))
    name_off = lay.put(name + b"\0")
    fills = sorted(task.fills, key=lambda f: f.dst_offset)
    skeleton, cursor = [], 0
    for f in fills:
        if f.dst_offset < cursor or f.length <= 0 or f.dst_offset + f.length > len(task.model):
            raise fmt.ImageError(f"task {task.name!r}: overlapping or out-of-range fill records")
        skeleton.append(task.model[cursor:f.dst_offset])
        cursor = f.dst_offset + f.length
    skeleton.append(task.model[cursor:])
    skel = b"".join(skeleton)
    skel_off = lay.put(skel)
    rows = []
    for f in fills:
        src = lay.put(f.payload) if f.kind != fmt.FillKind.ZERO else 0
        rows.append(fmt.FILL_RECORD.pack(f.dst_offset, f.length, f.kind, f.layout,
                                         f.codebook_count, 0, f.codebook_first,
                                         f.kernel_positions, src, f.inner_channels, 0))
    fill_off = lay.put(b"".join(rows)) if rows else fmt._align(lay.end)
    new_row = fmt.TASK_ENTRY.pack(name_off, len(name), len(task.model), fmt.crc32(task.model),
                                  skel_off, len(skel), fill_off, len(fills), task.arena_size, 0,
                                  task.original_size)
    table = old[task_table:task_table + fmt.TASK_ENTRY.size * n_tasks] + new_row
    table_off = lay.put(table)
    notes = bytes(notes)
    notes_off = lay.put(notes) if notes else 0
    size = fmt._align(lay.end)
    if size > fmt.MAX_IMAGE_SIZE:
        raise fmt.ImageError(f"image of {size} bytes exceeds the format's 4 GiB limit")
    buf = bytearray(size)
    buf[:len(old)] = old
    for off, data in lay.chunks:
        buf[off:off + len(data)] = data
    header = fmt.HEADER.pack(magic, version, header_size, size, 0, flags, n_cb, n_tasks + 1,
                             cb_table, table_off, max(max_model, len(task.model)),
                             max(max_arena, task.arena_size), notes_off, len(notes))
    buf[:HEADER_BYTES] = header
    struct.pack_into("<I", buf, 12, fmt.crc32(memoryview(buf)[16:]))
    return bytes(buf)
