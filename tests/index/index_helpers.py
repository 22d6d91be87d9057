"""Shared data and references for the index tests: clustered vectors and brute-force top-k."""

from __future__ import annotations

from typing import Any

import numpy as np

BACKENDS = ("faiss-flat", "faiss-hnsw", "faiss-ivf", "milvus")
EXACT = ("faiss-flat", "milvus")
# IVF trains at these sizes; small graph parameters keep HNSW builds quick; a low
# exact_subset_max sends filtered and tombstoned searches through FAISS's ID selector
TEST_CONFIG: dict[str, dict[str, Any]] = {
    "faiss-flat": {"exact_subset_max": 50},
    "faiss-hnsw": {"M": 16, "ef_construction": 64, "ef_search": 64, "exact_subset_max": 50},
    "faiss-ivf": {"train_min": 400, "nprobe": 8, "exact_subset_max": 50},
    "milvus": {},
}


def clustered(n: int, dim: int, *, clusters: int = 20, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres (ANN recall means something on these)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    points = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def brute_force(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str = "ip"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (scores, row numbers) by numpy, in float64."""
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "ip":
        scores = q @ b.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:
        scores = (q**2).sum(1)[:, None] - 2 * q @ b.T + (b**2).sum(1)[None, :]
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order
