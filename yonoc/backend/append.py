"""Append one task to an existing image so that a firmware can update flash with a small delta
(`yonoc add`, docs/image-format.md "Appending a task").

Only the 64-byte header changes; every other byte of the old image stays where it was. The new
task's sections, a new task table (the old rows unchanged, the new row last) and new build
notes are appended after the old image's end. The old task table and old notes stay behind as
unreferenced bytes (readers follow the header's offsets only), which costs 64 B per task and the
old notes per `add`. The task is serialised by `image_format.put_task`, as `write_image` does.
"""

from __future__ import annotations

from . import image_format as fmt

HEADER_BYTES = fmt.HEADER.size


def append_task(image: fmt.Image, task: fmt.Task, notes: bytes = b"") -> bytes:
    """The old image's bytes with `task` appended (index len(image.tasks)); header rewritten."""
    old = image.data
    if len(image.tasks) + 1 > fmt.MAX_TASKS:
        raise fmt.ImageError(f"the format holds at most {fmt.MAX_TASKS} tasks")
    h = fmt.read_header(old)
    lay = fmt._Layout(len(old))
    new_row = fmt.put_task(lay, task)
    rows = h.task_table_offset
    table = old[rows : rows + fmt.TASK_ENTRY.size * h.task_count] + new_row
    table_off = lay.put(table)
    notes = bytes(notes)
    notes_off = lay.put(notes) if notes else 0
    size = fmt.align(lay.end)
    if size > fmt.MAX_IMAGE_SIZE:
        raise fmt.ImageError(f"image of {size} bytes exceeds the format's 4 GiB limit")
    buf = bytearray(size)
    buf[: len(old)] = old
    for off, data in lay.chunks:
        buf[off : off + len(data)] = data
    header = h._replace(
        image_size=size,
        crc32=0,
        task_count=h.task_count + 1,
        task_table_offset=table_off,
        max_model_size=max(h.max_model_size, len(task.model)),
        max_arena_size=max(h.max_arena_size, task.arena_size),
        notes_offset=notes_off,
        notes_size=len(notes),
    ).pack()
    buf[:HEADER_BYTES] = header
    fmt.seal_crc(buf)
    return bytes(buf)
