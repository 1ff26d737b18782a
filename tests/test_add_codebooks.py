"""`yonoc add` recovers the image's frozen codebooks from its PQ records, including the
residual (6 bits/weight) rate of PQ_RESIDUAL records (issue 9 leftover)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from yonoc.add import image_codebooks
from yonoc.backend import image_format as fmt
from yonoc.ir import Group, Layout, WeightTensor
from yonoc.pq.codebooks import CodebookOptions, learn


def _tensor(seed=0):
    vals = np.clip(np.round(np.random.default_rng(seed).normal(0, 40, 8 * 64)), -127, 127)
    return WeightTensor(
        "t",
        "CONV_2D",
        (8, 1, 1, 64),
        Group.POINTWISE,
        Layout.LINEAR,
        1,
        1,
        0,
        vals.astype(np.int8),
        np.ones(8, np.float32),
        0,
    )


def _image_with(records_of):
    """A stand-in image: the shared table [2 bpw | 4 bpw | residual] and one task whose
    records `records_of(first index of each book)` gives."""
    t = _tensor()
    cs = learn([t], CodebookOptions(iterations=4, codewords=16))
    books = cs.rates(Group.POINTWISE)
    assert [b.bits_per_weight for b in books] == [2.0, 4.0, 6.0] and books[2].base is books[1]
    entries, firsts = [], []
    for b in books:
        firsts.append(len(entries))
        entries += [fmt.CodebookEntry(int(b.group), s) for s in b.subs]
    fills = records_of(books, firsts)
    task = SimpleNamespace(flash=False, fills=fills)
    return SimpleNamespace(tasks=[task], codebooks=entries), books, t


def _pq(book, first):
    return fmt.Fill(0, 8, fmt.FillKind.PQ, 0, first, len(book.subs), 0, 0, b"")


def _residual(base, base_first, book, first):
    return fmt.Fill(
        0,
        8,
        fmt.FillKind.PQ_RESIDUAL,
        0,
        base_first,
        len(base.subs),
        0,
        0,
        b"",
        residual_first=first,
        residual_count=len(book.subs),
    )


def test_residual_records_give_back_the_six_bit_rate():
    table = {}

    def records(b, f):
        table.update(zip(map(id, b), f))
        return [_pq(b[0], f[0]), _residual(b[1], f[1], b[2], f[2])]

    image, books, t = _image_with(records)
    got, firsts = image_codebooks(image)
    rates = got.rates(Group.POINTWISE)
    assert [b.bits_per_weight for b in rates] == [2.0, 4.0, 6.0]
    assert rates[2].base is rates[1]  # the residual rides on the recovered base object
    at = {id(b): i for b, i in zip(got.books, firsts)}
    assert [at[id(b)] for b in rates] == [table[id(b)] for b in books]
    v = t.vector_order()
    for ours, theirs in zip(rates, books):  # same codes, same decode as the learned books
        assert np.array_equal(
            ours.decode(ours.encode(v), v.size), theirs.decode(theirs.encode(v), v.size)
        )


def test_without_residual_records_there_is_no_six_bit_rate():
    image, _, _ = _image_with(lambda b, f: [_pq(b[0], f[0]), _pq(b[1], f[1])])
    got, _ = image_codebooks(image)
    assert [b.bits_per_weight for b in got.rates(Group.POINTWISE)] == [2.0, 4.0]
