import numpy as np
import pytest

from yonoc.backend import image_format as fmt
from yonoc.errors import YonocError
from yonoc.ir import Group, Layout, WeightTensor
from yonoc.pq.codebooks import CodebookOptions, CodebookSet, learn


def _tensor(shape, group, layout, seed=0, offset=0):
    rng = np.random.default_rng(seed)
    vals = np.clip(np.round(rng.normal(0, 40, int(np.prod(shape)))), -127, 127).astype(np.int8)
    p, i = (shape[1] * shape[2], shape[3]) if layout == Layout.KERNEL_MAJOR else (1, 1)
    return WeightTensor(
        "t", "CONV_2D", shape, group, layout, p, i, offset, vals, np.ones(shape[0], np.float32), 0
    )


def _set(tensors, **kw):
    return learn(tensors, CodebookOptions(iterations=8, **kw))


def test_codewords_are_integral_int8_values():
    t = _tensor((8, 3, 3, 5), Group.CONV3X3, Layout.KERNEL_MAJOR)
    cs = _set([t])
    for b in cs.books:
        for sub in b.subs:
            assert np.all(sub == np.round(sub)) and sub.min() >= -128 and sub.max() <= 127
            assert sub.shape[0] <= 256


@pytest.mark.parametrize("length", [36, 37, 38, 39, 41])
def test_encode_decode_matches_image_decoder_including_tail(length):
    rng = np.random.default_rng(length)
    vals = rng.integers(-127, 128, length).astype(np.float32)
    t = WeightTensor(
        "t",
        "FULLY_CONNECTED",
        (1, length),
        Group.POINTWISE,
        Layout.LINEAR,
        1,
        1,
        0,
        vals.astype(np.int8),
        np.ones(1, np.float32),
        0,
    )
    cs = _set([t], codewords=16)
    for book in cs.rates(Group.POINTWISE):
        idx = book.encode(vals)
        ours = book.decode(idx, length)
        if book.base is None:
            fill = fmt.Fill(0, length, fmt.FillKind.PQ, 0, 0, len(book.subs), 0, 0, idx.tobytes())
            entries = [fmt.CodebookEntry(1, s) for s in book.subs]
        else:  # residual rate: base stage's codebooks first, then the residual's
            m = len(book.base.subs)
            fill = fmt.Fill(
                0,
                length,
                fmt.FillKind.PQ_RESIDUAL,
                0,
                0,
                m,
                0,
                0,
                idx.tobytes(),
                residual_first=m,
                residual_count=len(book.subs),
            )
            entries = [fmt.CodebookEntry(1, s) for s in book.base.subs + book.subs]
        assert np.array_equal(fmt.decode_pq(fill, entries), ours)


def test_finer_rate_has_lower_error():
    t = _tensor((16, 1, 1, 64), Group.POINTWISE, Layout.LINEAR)
    cs = _set([t], codewords=16)
    errs = []
    for book in cs.rates(Group.POINTWISE):
        rec = book.decode(book.encode(t.vector_order()), t.size)
        errs.append(float(np.sum((rec.astype(float) - t.values) ** 2)))
    # 2, 4 and 6 (the residual rate) bits per weight
    assert len(errs) == 3 and errs[2] < errs[1] < errs[0]


def test_kernel_major_vector_order_round_trips():
    t = _tensor((4, 3, 3, 6), Group.CONV3X3, Layout.KERNEL_MAJOR)
    v = t.vector_order()
    # first 9 values are output 0, input channel 0, all 3x3 positions
    assert np.array_equal(v[:9], t.values.reshape(4, 3, 3, 6)[0, :, :, 0].reshape(-1))
    assert np.array_equal(t.from_vector_order(v).astype(np.int8), t.values)


def test_npz_round_trip_is_exact(tmp_path):
    t = _tensor((8, 1, 1, 32), Group.POINTWISE, Layout.LINEAR)
    cs = _set([t])
    p = tmp_path / "cb.npz"
    cs.to_npz(str(p))
    back = CodebookSet.from_npz(str(p))
    assert len(back.books) == len(cs.books)
    for a, b in zip(cs.books, back.books):
        assert a.group == b.group and a.subvector_len == b.subvector_len
        for x, y in zip(a.subs, b.subs):
            assert np.array_equal(x, y)


def test_bad_codebook_file_is_a_clean_error(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(YonocError):
        CodebookSet.from_npz(str(p))


def test_learning_is_deterministic():
    ts = [_tensor((8, 3, 3, 4), Group.CONV3X3, Layout.KERNEL_MAJOR, seed=s) for s in range(3)]
    a, b = _set(ts), _set(ts)
    for x, y in zip(a.books, b.books):
        for p, q in zip(x.subs, y.subs):
            assert np.array_equal(p, q)
