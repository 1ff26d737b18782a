"""Shared product-quantisation codebooks: learn, encode, decode, save and load.

Vectors are built in the int8 value domain (the stored integers, before each tensor's scale), so
weights of different models and layers share one codebook whatever their scales. Codewords are
rounded to integers after k-means: the rebuilt weights are int8 anyway, so this loses nothing,
makes the fp16 copy in the image exact and the firmware's decode a plain table lookup.

A `PQCodebook` is one rate for one group: M sub-codebooks of K codewords of `s` values each;
sub-vector j of a tensor uses sub-codebook j mod M (paper §2.2, M = 2). A `CodebookSet` holds
one or more rates per group; a finer rate (smaller s) costs more index bytes per weight and
is what the fidelity pass upgrades a sensitive tensor to before keeping it raw.
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

CODEBOOK_FILE_VERSION = 1


@dataclass(frozen=True)
class CodebookOptions:
    """How codebooks are shaped and learned. Defaults chosen by measurement: docs/benchmarks.md."""

    codewords: int = 256  # K: one-byte indices
    subcodebooks: int = 2  # M (paper: 2)
    # sub-vector lengths per group, coarsest first: each is one rate (bits/weight = 8*M... /s)
    subvector_lengths: dict = field(default_factory=lambda: {Group.CONV3X3: (4, 2),
                                                             Group.POINTWISE: (4, 2)})
    seed: int = 0
    iterations: int = 50  # a cap: Lloyd stops earlier once an iteration gains < 1e-6
    max_training_vectors: int = 65_536  # per sub-codebook; a seeded sample beyond that


@dataclass
class PQCodebook:
    group: Group
    subvector_len: int
    subs: list[np.ndarray]  # M arrays [K, s] float32, integral values in [-128, 127]

    @property
    def codewords(self) -> int:
        return int(self.subs[0].shape[0])

    @property
    def bits_per_weight(self) -> float:
        return 8.0 / self.subvector_len

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Nearest-codeword indices (uint8) for a vector-order float array."""
        s, m = self.subvector_len, len(self.subs)
        n = -(-len(values) // s)
        padded = np.zeros(n * s, np.float32)
        padded[:len(values)] = values
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
                last, _ = nearest(vecs[n - 1:, :tail], self.subs[j][:, :tail])
                idx[n - 1] = last[0]
        return idx.astype(np.uint8)

    def decode(self, indices: np.ndarray, length: int) -> np.ndarray:
        """Vector-order int8 values for indices (what the firmware computes)."""
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
        return [b for b in self.books if b.group == group]

    def to_npz(self, path_or_file) -> None:
        meta = {"version": CODEBOOK_FILE_VERSION,
                "books": [{"group": int(b.group), "subvector_len": b.subvector_len,
                           "subcodebooks": len(b.subs)} for b in self.books]}
        arrays = {f"book{i}_sub{j}": sub.astype(np.float32)
                  for i, b in enumerate(self.books) for j, sub in enumerate(b.subs)}
        np.savez(path_or_file, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)

    @staticmethod
    def from_npz(path: str) -> CodebookSet:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("version") != CODEBOOK_FILE_VERSION:
                    raise YonocError(f"{path}: codebook file version {meta.get('version')} "
                                     f"is not {CODEBOOK_FILE_VERSION}")
                books = []
                for i, b in enumerate(meta["books"]):
                    subs = [np.array(z[f"book{i}_sub{j}"], np.float32)
                            for j in range(b["subcodebooks"])]
                    books.append(PQCodebook(Group(b["group"]), int(b["subvector_len"]), subs))
        except YonocError:
            raise
        except Exception as e:
            raise YonocError(f"{path}: not a yonoc codebook file ({type(e).__name__})") from None
        _validate(books, path)
        return CodebookSet(books)


def _validate(books, path):
    for b in books:
        for sub in b.subs:
            if (sub.ndim != 2 or sub.shape[1] != b.subvector_len or not 1 <= sub.shape[0] <= 256
                    or not 1 <= b.subvector_len <= 16 or not np.all(np.isfinite(sub))):
                raise YonocError(f"{path}: malformed codebook (K must be 1..256, s 1..16)")
        if not 1 <= len(b.subs) <= 4:
            raise YonocError(f"{path}: 1..4 sub-codebooks per rate are supported")


def _training_vectors(tensors: list[WeightTensor], s: int, m: int, j: int) -> np.ndarray:
    """All whole sub-vectors at positions j mod m of every tensor, in tensor order."""
    parts = []
    for t in tensors:
        v = t.vector_order()
        n = len(v) // s
        parts.append(v[:n * s].reshape(n, s)[j::m])
    return np.concatenate(parts) if parts else np.zeros((0, s), np.float32)


def learn(tensors: list[WeightTensor], options: CodebookOptions) -> CodebookSet:
    """Learn one codebook per (group, rate) from the given tensors (of any number of models)."""
    books = []
    for group in (Group.CONV3X3, Group.POINTWISE):
        members = [t for t in tensors if t.group == group]
        for s in options.subvector_lengths[group]:
            subs = []
            for j in range(options.subcodebooks):
                x = _training_vectors(members, s, options.subcodebooks, j)
                seed = options.seed * 1000 + int(group) * 100 + s * 10 + j
                if len(x) == 0:
                    # no weights of this group: a zero codebook keeps indices valid
                    subs.append(np.zeros((1, s), np.float32))
                    continue
                if len(x) > options.max_training_vectors:
                    rng = np.random.default_rng(seed)
                    x = x[np.sort(rng.choice(len(x), options.max_training_vectors,
                                             replace=False))]
                k = min(options.codewords, len(np.unique(x, axis=0)))
                log.info("k-means: group %s, sub-vectors of %d, sub-codebook %d/%d: K=%d on %d "
                         "vectors", group.name, s, j + 1, options.subcodebooks, k, len(x))
                centroids, _ = kmeans(x, k, seed=seed, iterations=options.iterations)
                subs.append(_integral(centroids))
            books.append(PQCodebook(group, s, subs))
    return CodebookSet(books)


def _integral(centroids: np.ndarray) -> np.ndarray:
    """Round codewords to int8 values, sorted so the table is canonical."""
    c = np.clip(np.round(centroids), -128, 127).astype(np.float32)
    c = np.unique(c, axis=0)  # sorted, duplicates merged (a duplicate is never chosen anyway)
    return c
