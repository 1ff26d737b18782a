import numpy as np

from yonoc.pq.kmeans import kmeans, nearest


def _blobs(seed=1, k=8, n=400, d=4):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-100, 100, (k, d))
    x = np.concatenate([c + rng.normal(0, 1.0, (n, d)) for c in centers])
    return x.astype(np.float32), centers


def test_recovers_well_separated_clusters():
    x, centers = _blobs()
    c, inertia = kmeans(x, 8, seed=3)
    # every true centre has a learned centroid within noise distance
    d = np.linalg.norm(centers[:, None, :] - c[None], axis=2).min(axis=1)
    assert d.max() < 1.0
    assert inertia / len(x) < 4 * 1.5  # ~ d * sigma^2


def test_same_seed_same_result_and_seed_matters():
    x, _ = _blobs()
    a, _ = kmeans(x, 16, seed=5)
    b, _ = kmeans(x, 16, seed=5)
    c, _ = kmeans(x, 16, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_more_clusters_than_distinct_points_repairs_empty_clusters():
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    c, inertia = kmeans(x, 5, seed=0)
    assert c.shape == (5, 3)
    assert inertia == 0.0


def test_chunked_nearest_equals_direct():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 4)).astype(np.float32)
    c = rng.normal(size=(32, 4)).astype(np.float32)
    i1, d1 = nearest(x, c, chunk=7)
    full = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    assert np.array_equal(i1, full.argmin(1))
    np.testing.assert_allclose(d1, full.min(1), rtol=1e-4, atol=1e-4)
