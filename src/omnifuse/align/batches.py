"""Batch orders for contrastive training: random, or neighbourhoods (hard negatives).

A contrastive batch is its own set of negatives, so the batch order decides how hard the
negatives are. ``random_batches`` shuffles. ``neighbour_batches`` fills each batch with small
clusters — a random seed item and its nearest not-yet-used neighbours in the frozen encoder
space — so every item meets look-alikes (a "red circle above a blue square" next to a "blue
circle above a red square") as negatives, the nearest-neighbour mining of hard-negative
contrastive training. Every item still appears exactly once per epoch.
"""

from __future__ import annotations

import numpy as np
import torch


def random_batches(count: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled partition of ``range(count)`` into batches; a last batch of one item joins
    the previous batch (a single pair has no negatives)."""
    order = rng.permutation(count)
    batches = [order[i : i + batch_size] for i in range(0, count, batch_size)]
    return _merge_singleton(batches)


def _merge_singleton(batches: list[np.ndarray]) -> list[np.ndarray]:
    if len(batches) > 1 and len(batches[-1]) < 2:
        last = batches.pop()
        batches[-1] = np.concatenate([batches[-1], last])
    return batches


def nearest_neighbours(features: torch.Tensor, k: int, *, chunk: int = 4096) -> np.ndarray:
    """(N, min(k, N − 1)) indices of each row's nearest other rows by cosine similarity."""
    unit = torch.nn.functional.normalize(features.to(torch.float32), dim=1)
    k = min(k, unit.shape[0] - 1)
    parts = []
    for start in range(0, unit.shape[0], chunk):
        sims = unit[start : start + chunk] @ unit.T  # (C, N)
        rows = torch.arange(start, min(start + chunk, unit.shape[0]))
        sims[torch.arange(len(rows)), rows] = -torch.inf
        parts.append(sims.topk(k, dim=1).indices)
    return torch.cat(parts).numpy() if parts else np.zeros((0, k), dtype=np.int64)


def neighbour_batches(
    neighbours: np.ndarray, batch_size: int, cluster: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches made of clusters of up to ``cluster`` items: a random unused seed and its nearest
    unused neighbours (from the precomputed ``neighbours`` lists)."""
    count = len(neighbours)
    used = np.zeros(count, dtype=bool)
    order: list[int] = []
    for seed in rng.permutation(count):
        if used[seed]:
            continue
        members = [int(seed)]
        used[seed] = True
        for other in neighbours[seed]:
            if len(members) >= cluster:
                break
            if not used[other]:
                members.append(int(other))
                used[other] = True
        order.extend(members)
    flat = np.asarray(order, dtype=np.int64)
    batches = [flat[i : i + batch_size] for i in range(0, count, batch_size)]
    return _merge_singleton(batches)
