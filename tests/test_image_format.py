import struct

import numpy as np
import pytest

from yonoc.backend import format_spec as spec
from yonoc.backend import image_format as fmt
from yonoc.errors import ImageError


def _image(kernel_major=False):
    rng = np.random.default_rng(0)
    cw = [rng.integers(-128, 128, (16, 4)).astype(np.float32) for _ in range(2)]
    entries = [fmt.CodebookEntry(0, c) for c in cw]
    length = 72  # O=2, P=9, I=4
    idx = rng.integers(0, 16, 18).astype(np.uint8)
    pq = fmt.Fill(
        100,
        length,
        fmt.FillKind.PQ,
        1 if kernel_major else 0,
        0,
        2,
        9 if kernel_major else 0,
        4 if kernel_major else 0,
        idx.tobytes(),
    )
    decoded = fmt.decode_pq(pq, entries).tobytes()
    model = bytearray(rng.integers(1, 255, 400).astype(np.uint8).tobytes())
    model[100:172] = decoded
    model[200:260] = bytes(60)
    raw = fmt.Fill(300, 10, fmt.FillKind.RAW, payload=bytes(model[300:310]))
    fills = [pq, raw] + fmt.zero_fills(bytes(model), [pq, raw])
    task = fmt.Task("task_a", bytes(model), fills, arena_size=1234, original_size=500)
    task2 = fmt.Task("b", bytes(range(50)), [], 0, 50)
    return fmt.write_image(entries, [task, task2]), task, task2, entries


@pytest.mark.parametrize("kernel_major", [False, True])
def test_round_trip(kernel_major):
    data, task, task2, _ = _image(kernel_major)
    img = fmt.read_image(data)
    assert [t.name for t in img.tasks] == ["task_a", "b"]
    assert fmt.rebuild(img, 0) == task.model
    assert fmt.rebuild(img, 1) == task2.model
    assert img.max_model_size == 400 and img.max_arena_size == 1234
    assert len(data) % spec.ALIGN == 0
    assert [f.kind for f in img.tasks[0].fills] == [
        fmt.FillKind.PQ,
        fmt.FillKind.ZERO,
        fmt.FillKind.RAW,
    ]


def test_kernel_major_scatter_matches_spec_formula():
    _, task, _, entries = _image(True)
    f = task.fills[0]
    vec = np.empty(f.length, np.int8)
    tables = [fmt.codeword_to_int8(e.codewords) for e in entries]
    idx = np.frombuffer(f.payload, np.uint8)
    for j, k in enumerate(idx):
        vec[j * 4 : (j + 1) * 4] = tables[j % 2][k]
    out = np.empty(f.length, np.int8)
    n_pos, n_inner = 9, 4  # the spec's P and I
    for e in range(f.length):
        o, r = divmod(e, n_inner * n_pos)
        i, p = divmod(r, n_pos)
        out[o * n_pos * n_inner + p * n_inner + i] = vec[e]
    assert np.array_equal(out, fmt.decode_pq(f, entries))


def test_codeword_conversion_rounds_half_away_and_clamps():
    v = np.array([0.5, -0.5, 1.49, 300, -300, np.nan, 2.5], np.float32)
    assert fmt.codeword_to_int8(v).tolist() == [1, -1, 1, 127, -128, 0, 3]


H = spec.HEADER.offset
T = spec.TASK_ENTRY.offset
F = spec.FILL_RECORD.offset


def _recrc(buf: bytearray) -> bytes:
    struct.pack_into("<I", buf, H("crc32"), fmt.crc32(bytes(buf[spec.CRC_START :])))
    return bytes(buf)


def test_writer_is_deterministic():
    assert _image()[0] == _image()[0]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:10], "too short"),
        (lambda b: b"XONO" + b[4:], "bad magic"),
        (lambda b: b[:-16], "truncated"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "CRC"),
    ],
)
def test_corruption_is_detected(mutate, message):
    data = _image()[0]
    with pytest.raises(ImageError, match=message):
        fmt.read_image(mutate(data))


@pytest.mark.parametrize("version", [fmt.FORMAT_VERSION - 1, fmt.FORMAT_VERSION + 1])
def test_wrong_version_is_reported(version):
    buf = bytearray(_image()[0])
    struct.pack_into("<H", buf, H("format_version"), version)
    with pytest.raises(ImageError, match=f"version {version}"):
        fmt.read_image(bytes(buf))


def _with_notes(notes):
    data, task, task2, entries = _image()
    return fmt.write_image(entries, [task, task2], notes)


def test_notes_round_trip_and_sit_last_without_moving_anything_else():
    plain = fmt.read_image(_image()[0])
    assert plain.notes == b""
    notes = bytes(range(37))
    data = _with_notes(notes)
    img = fmt.read_image(data)
    assert img.notes == notes
    off, size = struct.unpack_from("<II", data, H("notes_offset"))
    assert (off, size) == (len(plain.data), 37)
    assert off % spec.ALIGN == 0 and len(data) % spec.ALIGN == 0
    # everything before the notes is the plain image, apart from image_size, CRC and notes fields
    same = bytearray(data[:off])
    struct.pack_into("<I", same, H("image_size"), len(plain.data))
    same[H("crc32") : H("crc32") + 4] = plain.data[H("crc32") : H("crc32") + 4]
    struct.pack_into("<II", same, H("notes_offset"), 0, 0)
    assert bytes(same) == plain.data
    assert [fmt.rebuild(img, i) for i in range(2)] == [fmt.rebuild(plain, i) for i in range(2)]


@pytest.mark.parametrize(
    "off_size, message",
    [
        (lambda n: (n - 16, 32), "build notes lies outside"),
        (lambda n: (0xFFFFFFF0, 0x20), "build notes lies outside"),
        (lambda n: (16, 0), "empty build notes"),
    ],
)
def test_lying_notes_fields_are_caught(off_size, message):
    buf = bytearray(_with_notes(b"n" * 20))
    struct.pack_into("<II", buf, H("notes_offset"), *off_size(len(buf)))
    with pytest.raises(ImageError, match=message):
        fmt.read_image(_recrc(buf))


def test_lying_lengths_and_indices_are_caught_even_with_a_valid_crc():
    data = _image()[0]
    task_table = struct.unpack_from("<I", data, H("task_table_offset"))[0]
    # task 0 model_size larger than what the records and skeleton add up to
    buf = bytearray(data)
    struct.pack_into("<I", buf, task_table + T("model_size"), 10_000)
    with pytest.raises(ImageError):
        fmt.read_image(_recrc(buf))
    # skeleton offset beyond the image
    buf = bytearray(data)
    struct.pack_into("<I", buf, task_table + T("skeleton_offset"), len(data) + 5)
    with pytest.raises(ImageError, match="outside"):
        fmt.read_image(_recrc(buf))
    # an index past K: codebooks have 16 codewords
    fill_table = struct.unpack_from("<I", data, task_table + T("fill_table_offset"))[0]
    src = struct.unpack_from("<I", data, fill_table + F("src_offset"))[0]
    buf = bytearray(data)
    buf[src] = 200
    with pytest.raises(ImageError, match="index past"):
        fmt.read_image(_recrc(buf))
    # codebook_first out of range
    buf = bytearray(data)
    struct.pack_into("<H", buf, fill_table + F("codebook_first"), 7)
    with pytest.raises(ImageError, match="missing codebooks"):
        fmt.read_image(_recrc(buf))


def test_every_byte_flip_past_the_crc_field_is_rejected():
    data = _image(True)[0]
    for pos in range(spec.CRC_START, len(data)):
        buf = bytearray(data)
        buf[pos] ^= 0x5A
        with pytest.raises(ImageError):
            fmt.read_image(bytes(buf))  # CRC catches every flip past the CRC field


def test_limits_are_clear_errors():
    with pytest.raises(ImageError, match="at least one task"):
        fmt.write_image([], [])
    big = fmt.CodebookEntry(0, np.zeros((300, 4), np.float32))
    with pytest.raises(ImageError, match="K must be"):
        fmt.write_image([big], [fmt.Task("a", b"x", [])])
    with pytest.raises(ImageError, match="name"):
        fmt.write_image([], [fmt.Task("", b"x", [])])


def test_too_many_tasks_and_too_large_images_are_clear_errors(monkeypatch):
    tasks = [fmt.Task(f"t{i}", b"x", []) for i in range(fmt.MAX_TASKS + 1)]
    with pytest.raises(ImageError, match="at most 65535"):
        fmt.write_image([], tasks)
    monkeypatch.setattr(fmt, "MAX_IMAGE_SIZE", 1000)  # the u32 limit, scaled down
    with pytest.raises(ImageError, match="4 GiB"):
        fmt.write_image([], [fmt.Task("big", bytes(2000), [])])


# --------------------------------------------------------------- PQ_RESIDUAL (issue 9 part 2)


def _residual_image(**lie) -> bytes:
    """One task with a linear PQ_RESIDUAL record whose sums saturate at both ends."""
    base = np.array([[120, -120, 5, -5], [0, 1, 2, 3]], np.float32)
    res = np.array([[20, -20], [-9, 9], [0, 1]], np.float32)
    books = [fmt.CodebookEntry(0, base), fmt.CodebookEntry(0, res)]
    f = fmt.Fill(
        16,
        8,
        fmt.FillKind.PQ_RESIDUAL,
        0,
        0,
        1,
        payload=bytes([0, 1, 0, 1, 2, 0]),
        residual_first=1,
        residual_count=1,
    )
    model = bytearray(range(1, 65))
    model[16:24] = fmt.decode_pq(f, books).tobytes()
    for k, v in lie.items():
        setattr(f, k, v)
    return fmt.write_image(books, [fmt.Task("r", bytes(model), [f])])


def test_residual_record_sums_two_stages_with_saturation():
    image = fmt.read_image(_residual_image())
    f = image.tasks[0].fills[0]
    assert f.kind == fmt.FillKind.PQ_RESIDUAL and (f.residual_first, f.residual_count) == (1, 1)
    assert len(f.payload) == 2 + 4  # ceil(8/4) first-stage + ceil(8/2) residual indices
    got = np.frombuffer(fmt.rebuild(image, 0)[16:24], np.int8)
    # [120,-120,5,-5] + [20,-20,-9,9] saturates; [0,1,2,3] + [0,1,20,-20]
    assert got.tolist() == [127, -128, -4, 4, 0, 2, 22, -17]


@pytest.mark.parametrize(
    "lie,message",
    [
        ({"residual_count": 0}, "names missing codebooks"),
        ({"residual_first": 2}, "names missing codebooks"),
        ({"payload": bytes([0, 1, 0, 1, 3, 0])}, "index past its codebook"),
    ],
)
def test_reader_refuses_a_bad_residual_stage(lie, message):
    with pytest.raises(ImageError, match=message):
        fmt.read_image(_residual_image(**lie))


def test_residual_indices_must_lie_inside_the_image():
    data = bytearray(_residual_image())
    rec = next(
        i
        for i in range(len(data) - 24)
        if data[i + 8] == fmt.FillKind.PQ_RESIDUAL
        and data[i : i + 8] == bytes([16, 0, 0, 0, 8, 0, 0, 0])
    )
    # first stage's 2 indices end at the image end: the residual's 4 lie past it
    struct.pack_into("<I", data, rec + 16, len(data) - 2)
    struct.pack_into("<I", data, 12, fmt.crc32(bytes(data[16:])))
    with pytest.raises(ImageError, match="outside the image"):
        fmt.read_image(bytes(data))


def test_residual_rate_survives_a_codebook_file(tmp_path):
    from yonoc.ir import Group
    from yonoc.pq.codebooks import CodebookOptions, CodebookSet, learn

    rng = np.random.default_rng(3)
    from yonoc.ir import Layout, WeightTensor

    t = WeightTensor(
        "t",
        "FULLY_CONNECTED",
        (32, 64),
        Group.POINTWISE,
        Layout.LINEAR,
        1,
        1,
        0,
        rng.integers(-90, 90, 2048).astype(np.int8),
        np.ones(1, np.float32),
        0,
    )
    cs = learn([t], CodebookOptions(codewords=16, iterations=5))
    fine = cs.rates(Group.POINTWISE)[-1]
    assert fine.base is cs.rates(Group.POINTWISE)[1] and fine.bits_per_weight == 6.0
    cs.to_npz(tmp_path / "cb.npz")
    back = CodebookSet.from_npz(str(tmp_path / "cb.npz")).rates(Group.POINTWISE)[-1]
    assert back.base is not None and back.bits_per_weight == 6.0
    v = t.vector_order()
    assert np.array_equal(back.encode(v), fine.encode(v))
