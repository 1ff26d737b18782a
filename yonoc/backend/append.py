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
    (
        magic,
        version,
        header_size,
        _,
        _,
        flags,
        n_cb,
        n_tasks,
        cb_table,
        task_table,
        max_model,
        max_arena,
        _,
        _,
    ) = fmt.HEADER.unpack_from(old, 0)
    lay = fmt._Layout(len(old))
    new_row = fmt.put_task(lay, task)
    table = old[task_table : task_table + fmt.TASK_ENTRY.size * n_tasks] + new_row
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
    header = fmt.HEADER.pack(
        magic,
        version,
        header_size,
        size,
        0,
        flags,
        n_cb,
        n_tasks + 1,
        cb_table,
        table_off,
        max(max_model, len(task.model)),
        max(max_arena, task.arena_size),
        notes_off,
        len(notes),
    )
    buf[:HEADER_BYTES] = header
    fmt.seal_crc(buf)
    return bytes(buf)
