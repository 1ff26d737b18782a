"""Seeded numpy k-means: k-means++ init, Lloyd iterations, empty-cluster repair.

Distances are computed in chunks so memory stays bounded (`chunk` rows x K floats) however many
vectors the models hold. Every random choice comes from one `numpy.random.Generator` seeded by
the caller, and reductions run in a fixed order, so equal inputs give bit-identical codebooks.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 16384


def nearest(
    x: np.ndarray, centroids: np.ndarray, chunk: int = _CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centroid for every row of x, and the squared distance to it."""
    x = np.ascontiguousarray(x, np.float32)
    c = np.ascontiguousarray(centroids, np.float32)
    c_sq = np.einsum("kd,kd->k", c, c)
    idx = np.empty(len(x), np.int64)
    dist = np.empty(len(x), np.float32)
    for start in range(0, len(x), chunk):
        xs = x[start : start + chunk]
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2 ; argmin does not need ||x||^2
        d = c_sq[None, :] - 2.0 * (xs @ c.T)
        j = np.argmin(d, axis=1)
        idx[start : start + chunk] = j
        x_sq = np.einsum("nd,nd->n", xs, xs)
        dist[start : start + chunk] = np.maximum(d[np.arange(len(xs)), j] + x_sq, 0.0)
    return idx, dist


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) with one candidate per step."""
    n = len(x)
    centroids = np.empty((k, x.shape[1]), np.float32)
    centroids[0] = x[rng.integers(n)]
    d2 = np.sum((x - centroids[0]) ** 2, axis=1, dtype=np.float64)
    for j in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: repeat points, repair fixes them later
            centroids[j:] = x[rng.integers(n, size=k - j)]
            break
        r = rng.random() * total
        pick = int(np.searchsorted(np.cumsum(d2), r, side="right"))
        pick = min(pick, n - 1)
        centroids[j] = x[pick]
        d2 = np.minimum(d2, np.sum((x - centroids[j]) ** 2, axis=1, dtype=np.float64))
    return centroids


def kmeans(
    x: np.ndarray,
    k: int,
    seed: int = 0,
    iterations: int = 25,
    init_sample: int = 20000,
    tol: float = 1e-6,
) -> tuple[np.ndarray, float]:
    """Cluster the rows of x into k centroids. Returns (centroids [k, d] float32, inertia).

    k-means++ runs on a seeded sample of at most `init_sample` rows (it is O(n k)); Lloyd
    iterations run on all rows. A cluster that empties is re-seeded with the point that is
    currently worst served, so all k codewords stay useful.
    """
    x = np.ascontiguousarray(x, np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError("kmeans needs a non-empty 2-D array")
    rng = np.random.default_rng(seed)
    sample = (
        x if len(x) <= init_sample else x[np.sort(rng.choice(len(x), init_sample, replace=False))]
    )
    centroids = _kmeans_pp(sample, k, rng)
    prev = np.inf
    inertia = np.inf
    for _ in range(iterations):
        idx, dist = nearest(x, centroids)
        inertia = float(dist.sum(dtype=np.float64))
        counts = np.bincount(idx, minlength=k)
        sums = np.stack(
            [np.bincount(idx, weights=x[:, j], minlength=k) for j in range(x.shape[1])], axis=1
        )
        nonempty = counts > 0
        centroids[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
        empty = np.flatnonzero(~nonempty)
        if len(empty):
            worst = np.argsort(-dist, kind="stable")[: len(empty)]
            centroids[empty] = x[worst]
        if len(empty) == 0 and prev - inertia <= tol * max(prev, 1.0):
            break
        prev = inertia
    _, dist = nearest(x, centroids)
    return centroids, float(dist.sum(dtype=np.float64))
