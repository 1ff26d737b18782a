"""Shared product-quantisation codebooks: learn, encode, decode, save and load.

Vectors are built in the int8 value domain (the stored integers, before each tensor's scale), so
weights of different models and layers share one codebook whatever their scales. Codewords are
rounded to integers after k-means: the rebuilt weights are int8 anyway, so this loses nothing,
makes the fp16 copy in the image exact and the firmware's decode a plain table lookup.

A `PQCodebook` is one rate for one group: M sub-codebooks of K codewords of `s` values each;
sub-vector j of a tensor uses sub-codebook j mod M (paper §2.2, M = 2). A `CodebookSet` holds
one or more rates per group; a finer rate (smaller s) costs more index bytes per weight and
is what the fidelity pass upgrades a sensitive tensor to before keeping it raw.

A *residual* rate (`base` set) is two stages: the base rate's codes, then this book's codes of
what the base leaves (values - base decode); the weights are their saturated int8 sum. With
one-byte indices 8/s bpw has nothing between 4 (s=2) and 8 (s=1, raw size); the residual s=4
stage on the s=2 rate gives 6 bpw (measured choice: docs/image-format.md, "Residual rate").
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import YonocError
from ..ir import Group, WeightTensor
from .kmeans import kmeans, nearest

log = logging.getLogger("yonoc")

CODEBOOK_FILE_VERSION = 2  # 2: residual rates (meta "base"); version 1 files still load


@dataclass(frozen=True)
class CodebookOptions:
    """How codebooks are shaped and learned. Defaults chosen by measurement: docs/benchmarks.md."""

    codewords: int = 256  # K: one-byte indices
    subcodebooks: int = 2  # M (paper: 2)
    # sub-vector lengths per group, coarsest first: each is one rate (bits/weight = 8*M... /s)
    subvector_lengths: dict = field(
        default_factory=lambda: {Group.CONV3X3: (4, 2), Group.POINTWISE: (4, 2)}
    )
    # residual rates per group: (base s, residual s) pairs; the base must be one of the group's
    # subvector_lengths. (2, 4) = 4 + 2 = 6 bits/weight.
    residual_lengths: dict = field(
        default_factory=lambda: {Group.CONV3X3: ((2, 4),), Group.POINTWISE: ((2, 4),)}
    )
    seed: int = 0
    iterations: int = 50  # a cap: Lloyd stops earlier once an iteration gains < 1e-6
    max_training_vectors: int = 65_536  # per sub-codebook; a seeded sample beyond that


GROUP_NAMES = {"A": Group.CONV3X3, "B": Group.POINTWISE}  # as --subvector-lengths names them


def group_rates(lengths: dict, overrides: dict) -> dict:
    """`lengths` ({Group: subvector lengths}) with `overrides` ({"A" or "B": [s, ...]}, as
    --subvector-lengths and a spec's [build] subvector_lengths give them) applied: one rate
    per distinct length, coarsest first. ValueError names the bad entry."""
    names = GROUP_NAMES
    out = dict(lengths)
    for g, lens in overrides.items():
        ok = isinstance(lens, (list, tuple)) and lens
        ok = ok and all(isinstance(x, int) and not isinstance(x, bool) for x in lens)
        if str(g).upper() not in names or not ok or any(not 1 <= x <= 16 for x in lens):
            raise ValueError(f"{g}={lens!r}: expected A=4,2 or B=4 (group A or B, lengths 1..16)")
        out[names[str(g).upper()]] = tuple(sorted(set(lens), reverse=True))
    return out


@dataclass(eq=False)
class PQCodebook:
    group: Group
    subvector_len: int
    subs: list[np.ndarray]  # M arrays [K, s] float32, integral values in [-128, 127]
    base: PQCodebook | None = None  # set: a residual rate on top of `base` (one level only)

    @property
    def codewords(self) -> int:
        return int(self.subs[0].shape[0])

    @property
    def bits_per_weight(self) -> float:
        return 8.0 / self.subvector_len + (self.base.bits_per_weight if self.base else 0.0)

    def index_count(self, length: int) -> int:
        """Index bytes of a `length`-value tensor (both stages of a residual rate)."""
        own = -(-length // self.subvector_len)
        return own + (self.base.index_count(length) if self.base else 0)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Nearest-codeword indices (uint8) for a vector-order float array (a residual rate:
        the base's indices, then this stage's on what the base leaves)."""
        if self.base is None:
            return self._encode_stage(values)
        first = self.base.encode(values)
        rest = values - self.base.decode(first, len(values)).astype(np.float32)
        return np.concatenate([first, self._encode_stage(rest)])

    def decode(self, indices: np.ndarray, length: int) -> np.ndarray:
        """Vector-order int8 values for indices (what the firmware computes)."""
        if self.base is None:
            return self._decode_stage(indices, length)
        n = self.base.index_count(length)
        v = self.base.decode(indices[:n], length).astype(np.int16)
        v += self._decode_stage(indices[n:], length)
        return np.clip(v, -128, 127).astype(np.int8)  # saturating, as the firmware adds

    def _encode_stage(self, values: np.ndarray) -> np.ndarray:
        s, m = self.subvector_len, len(self.subs)
        n = -(-len(values) // s)
        padded = np.zeros(n * s, np.float32)
        padded[: len(values)] = values
        vecs = padded.reshape(n, s)
        idx = np.empty(n, np.int64)
        tail = len(values) - (n - 1) * s  # valid values in the last sub-vector
        for j in range(m):
            rows = np.arange(j, n, m)
            if len(rows) == 0:
                continue
            full = rows[rows < n - 1] if tail < s else rows
            idx[full], _ = nearest(vecs[full], self.subs[j])
            if tail < s and (n - 1) % m == j:
                last, _ = nearest(vecs[n - 1 :, :tail], self.subs[j][:, :tail])
                idx[n - 1] = last[0]
        return idx.astype(np.uint8)

    def _decode_stage(self, indices: np.ndarray, length: int) -> np.ndarray:
        m = len(self.subs)
        out = np.empty((len(indices), self.subvector_len), np.float32)
        for j in range(m):
            out[j::m] = self.subs[j][indices[j::m].astype(np.int64)]
        return out.reshape(-1)[:length].astype(np.int8)


@dataclass
class CodebookSet:
    """The codebooks of one image (shared) or of one model (pq-s), coarsest rate first."""

    books: list[PQCodebook]

    def rates(self, group: Group) -> list[PQCodebook]:
        """The group's rates, coarsest (fewest bits per weight) first."""
        return sorted((b for b in self.books if b.group == group), key=lambda b: b.bits_per_weight)

    def subvector_lengths(self) -> dict:
        """{Group: one-stage subvector lengths, coarsest first}, as CodebookOptions has them."""
        out: dict = {}
        for b in self.books:
            if b.base is None:
                out[b.group] = tuple(sorted({*out.get(b.group, ()), b.subvector_len}, reverse=True))
        return out

    def to_npz(self, path_or_file) -> None:
        at = {id(b): i for i, b in enumerate(self.books)}
        meta = {
            "version": CODEBOOK_FILE_VERSION,
            "books": [
                {
                    "group": int(b.group),
                    "subvector_len": b.subvector_len,
                    "subcodebooks": len(b.subs),
                    "base": at[id(b.base)] if b.base is not None else -1,
                }
                for b in self.books
            ],
        }
        arrays = {
            f"book{i}_sub{j}": sub.astype(np.float32)
            for i, b in enumerate(self.books)
            for j, sub in enumerate(b.subs)
        }
        np.savez(path_or_file, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)

    @staticmethod
    def from_npz(path: str) -> CodebookSet:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("version") not in (1, CODEBOOK_FILE_VERSION):
                    raise YonocError(
                        f"{path}: codebook file version {meta.get('version')} "
                        f"is not 1 or {CODEBOOK_FILE_VERSION}"
                    )
                books, bases = [], []
                for i, b in enumerate(meta["books"]):
                    subs = [
                        np.array(z[f"book{i}_sub{j}"], np.float32) for j in range(b["subcodebooks"])
                    ]
                    books.append(PQCodebook(Group(b["group"]), int(b["subvector_len"]), subs))
                    bases.append(int(b.get("base", -1)))
                for book, base in zip(books, bases):
                    if base >= 0:
                        if (
                            base >= len(books)
                            or bases[base] >= 0
                            or books[base].group != book.group
                        ):
                            raise YonocError(f"{path}: malformed codebook (bad residual base)")
                        book.base = books[base]
        except YonocError:
            raise
        except Exception as e:
            raise YonocError(f"{path}: not a yonoc codebook file ({type(e).__name__})") from None
        _validate(books, path)
        return CodebookSet(books)


def _validate(books, path):
    for b in books:
        for sub in b.subs:
            if (
                sub.ndim != 2
                or sub.shape[1] != b.subvector_len
                or not 1 <= sub.shape[0] <= 256
                or not 1 <= b.subvector_len <= 16
                or not np.all(np.isfinite(sub))
            ):
                raise YonocError(f"{path}: malformed codebook (K must be 1..256, s 1..16)")
        if not 1 <= len(b.subs) <= 4:
            raise YonocError(f"{path}: 1..4 sub-codebooks per rate are supported")


def _training_vectors(vectors: list[np.ndarray], s: int, m: int, j: int) -> np.ndarray:
    """All whole sub-vectors at positions j mod m of every tensor, in tensor order."""
    parts = []
    for v in vectors:
        n = len(v) // s
        parts.append(v[: n * s].reshape(n, s)[j::m])
    return np.concatenate(parts) if parts else np.zeros((0, s), np.float32)


def learn(tensors: list[WeightTensor], options: CodebookOptions) -> CodebookSet:
    """Learn one codebook per (group, rate) from the given tensors (of any number of models),
    then the residual rates on what their base rates leave of the same tensors."""
    books = []
    for group in (Group.CONV3X3, Group.POINTWISE):
        members = [t for t in tensors if t.group == group]
        by_s = {}
        for s in options.subvector_lengths[group]:
            by_s[s] = _learn_book(group, s, [t.vector_order() for t in members], options, 0)
            books.append(by_s[s])
        for base_s, s in options.residual_lengths.get(group, ()):
            base = by_s.get(base_s)
            if base is None or not members:
                continue  # no such base rate here, or nothing to learn from
            rest = [
                v - base.decode(base.encode(v), len(v)).astype(np.float32)
                for v in (t.vector_order() for t in members)
            ]
            book = _learn_book(group, s, rest, options, 50 + base_s)
            book.base = base
            books.append(book)
    return CodebookSet(books)


def _learn_book(
    group: Group, s: int, vectors: list[np.ndarray], options: CodebookOptions, salt: int
) -> PQCodebook:
    """One rate: M sub-codebooks of K codewords of s values, from vector-order arrays."""
    subs = []
    for j in range(options.subcodebooks):
        x = _training_vectors(vectors, s, options.subcodebooks, j)
        seed = options.seed * 1000 + int(group) * 100 + s * 10 + j + salt * 1000
        if len(x) == 0:
            # no weights of this group: a zero codebook keeps indices valid
            subs.append(np.zeros((1, s), np.float32))
            continue
        if len(x) > options.max_training_vectors:
            rng = np.random.default_rng(seed)
            x = x[np.sort(rng.choice(len(x), options.max_training_vectors, replace=False))]
        k = min(options.codewords, len(np.unique(x, axis=0)))
        log.info(
            "k-means: group %s, sub-vectors of %d, sub-codebook %d/%d: K=%d on %d vectors",
            group.name,
            s,
            j + 1,
            options.subcodebooks,
            k,
            len(x),
        )
        centroids, _ = kmeans(x, k, seed=seed, iterations=options.iterations)
        subs.append(_integral(centroids))
    return PQCodebook(group, s, subs)


def _integral(centroids: np.ndarray) -> np.ndarray:
    """Round codewords to int8 values, sorted so the table is canonical."""
    c = np.clip(np.round(centroids), -128, 127).astype(np.float32)
    c = np.unique(c, axis=0)  # sorted, duplicates merged (a duplicate is never chosen anyway)
    return c
