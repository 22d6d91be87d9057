"""Retrieval metrics with any number of relevant gallery items per query.

Every function takes a score matrix ``scores`` (Q, G) — higher is more similar — and a boolean
relevance matrix ``relevant`` (Q, G). Galleries are ranked by descending score; ties are broken
by gallery order (a stable sort), so results are deterministic. Queries without any relevant
gallery item have no defined rank and are left out of every mean (``retrieval_report`` counts
them).

- ``recall_at_k``: the fraction of queries with at least one relevant item among the top ``k``
  (the "R@k" of image–text retrieval papers, which is a hit rate when several items are
  relevant).
- ``mrr``: the mean of 1 / rank of the first relevant item.
- ``mean_average_precision``: the mean over queries of average precision, the mean of
  precision@rank taken at the rank of each relevant item (uninterpolated, as scikit-learn's
  ``average_precision_score`` and ``label_ranking_average_precision_score`` compute it).

``chance_report`` gives the expected value of each metric for a random ranking, in closed form,
so a reported figure can be read against chance for the same relevance structure.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from omnifuse.errors import ConfigError

DEFAULT_KS = (1, 5, 10)


def _arrays(scores: Any, relevant: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as 2-D float64 / bool arrays of one shape (tensors are detached first)."""
    score_array = np.asarray(_numpy(scores), dtype=np.float64)
    relevant_array = np.asarray(_numpy(relevant), dtype=bool)
    if score_array.ndim != 2 or score_array.shape != relevant_array.shape:
        raise ConfigError(
            f"scores {score_array.shape} and relevant {relevant_array.shape} must be (Q, G) "
            "matrices of one shape"
        )
    if not np.isfinite(score_array).all():
        raise ConfigError("scores hold NaN or infinite values")
    return score_array, relevant_array


def _numpy(value: Any) -> Any:
    detach = getattr(value, "detach", None)
    return detach().cpu().numpy() if callable(detach) else value


def ranked_relevance(scores: Any, relevant: Any) -> np.ndarray:
    """(Q, G) relevance flags in each query's ranked order (best first, ties by gallery order)."""
    score_array, relevant_array = _arrays(scores, relevant)
    order = np.argsort(-score_array, axis=1, kind="stable")
    return np.take_along_axis(relevant_array, order, axis=1)


def _answerable(ranked: np.ndarray) -> np.ndarray:
    return ranked[ranked.any(axis=1)]


def first_relevant_ranks(scores: Any, relevant: Any) -> np.ndarray:
    """1-based rank of the first relevant item of each query that has one."""
    return _first_ranks(ranked_relevance(scores, relevant))


def _first_ranks(ranked: np.ndarray) -> np.ndarray:
    return np.asarray(_answerable(ranked).argmax(axis=1) + 1)


def recall_at_k(scores: Any, relevant: Any, k: int) -> float:
    """Fraction of queries with a relevant item in the top ``k`` (NaN when no query has one)."""
    if k < 1:
        raise ConfigError(f"k must be at least 1, not {k}")
    ranks = first_relevant_ranks(scores, relevant)
    return float(np.mean(ranks <= k)) if len(ranks) else math.nan


def mrr(scores: Any, relevant: Any) -> float:
    """Mean reciprocal rank of the first relevant item."""
    ranks = first_relevant_ranks(scores, relevant)
    return float(np.mean(1.0 / ranks)) if len(ranks) else math.nan


def average_precisions(scores: Any, relevant: Any) -> np.ndarray:
    """Average precision of each query that has a relevant item."""
    return _average_precisions(ranked_relevance(scores, relevant))


def _average_precisions(ranked_flags: np.ndarray) -> np.ndarray:
    ranked = _answerable(ranked_flags).astype(np.float64)
    if not len(ranked):
        return np.zeros(0)
    hits = np.cumsum(ranked, axis=1)
    positions = np.arange(1, ranked.shape[1] + 1, dtype=np.float64)
    precision_at_hits = hits / positions * ranked
    return np.asarray(precision_at_hits.sum(axis=1) / ranked.sum(axis=1))


def mean_average_precision(scores: Any, relevant: Any) -> float:
    """Mean over queries of (uninterpolated) average precision."""
    values = average_precisions(scores, relevant)
    return float(values.mean()) if len(values) else math.nan


def relevance_from_groups(
    query_groups: Sequence[Hashable], gallery_groups: Sequence[Hashable]
) -> np.ndarray:
    """(Q, G) relevance: a gallery item is relevant to a query when their groups are equal."""
    codes: dict[Hashable, int] = {}
    query = np.array([codes.setdefault(g, len(codes)) for g in query_groups], dtype=np.int64)
    gallery = np.array([codes.setdefault(g, len(codes)) for g in gallery_groups], dtype=np.int64)
    return np.asarray(query[:, None] == gallery[None, :])


def chance_recall_at_k(relevant_count: int, gallery: int, k: int) -> float:
    """P(at least one of ``relevant_count`` items in the top ``k`` of a random ranking)."""
    k = min(k, gallery)
    return 1.0 - math.comb(gallery - relevant_count, k) / math.comb(gallery, k)


def chance_mrr(relevant_count: int, gallery: int) -> float:
    """E[1 / rank of the first relevant item] of a random ranking."""
    total = math.comb(gallery, relevant_count)
    return sum(
        math.comb(gallery - i, relevant_count - 1) / total / i
        for i in range(1, gallery - relevant_count + 2)
    )


def chance_average_precision(relevant_count: int, gallery: int) -> float:
    """E[AP] of a random ranking: (H_G + (R − 1)/(G − 1) · (G − H_G)) / G, H the harmonic sum."""
    harmonic = sum(1.0 / i for i in range(1, gallery + 1))
    if gallery == 1:
        return 1.0
    spread = (relevant_count - 1) / (gallery - 1) * (gallery - harmonic)
    return (harmonic + spread) / gallery


def chance_report(relevant: Any, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Expected ``R@k``, ``mrr`` and ``map`` of random rankings with this relevance structure."""
    relevant_array = np.asarray(_numpy(relevant), dtype=bool)
    counts = relevant_array.sum(axis=1)
    counts = counts[counts > 0]
    gallery = int(relevant_array.shape[1])
    if not len(counts):
        return {**{f"R@{k}": math.nan for k in ks}, "mrr": math.nan, "map": math.nan}
    distinct, weight = np.unique(counts, return_counts=True)
    share = weight / weight.sum()

    def expected(metric: Any) -> float:
        return float(sum(p * metric(int(r)) for r, p in zip(distinct, share, strict=True)))

    out = {f"R@{k}": expected(lambda r, k=k: chance_recall_at_k(r, gallery, k)) for k in ks}
    out["mrr"] = expected(lambda r: chance_mrr(r, gallery))
    out["map"] = expected(lambda r: chance_average_precision(r, gallery))
    return out


def retrieval_report(scores: Any, relevant: Any, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Every metric for one retrieval direction, with its chance level and the counts.

    Keys: ``R@k`` for each ``k``, ``mrr``, ``map``, ``median_rank``, ``queries`` (those with a
    relevant item), ``unanswerable`` (those without), ``gallery`` and ``chance`` (the same metrics
    for random rankings).
    """
    ranked = ranked_relevance(scores, relevant)
    answerable = ranked.any(axis=1)
    ranks = _first_ranks(ranked)
    precisions = _average_precisions(ranked)
    report: dict[str, Any] = {
        f"R@{k}": float(np.mean(ranks <= k)) if len(ranks) else math.nan for k in ks
    }
    report["mrr"] = float(np.mean(1.0 / ranks)) if len(ranks) else math.nan
    report["map"] = float(precisions.mean()) if len(precisions) else math.nan
    report["median_rank"] = float(np.median(ranks)) if len(ranks) else math.nan
    report["queries"] = int(answerable.sum())
    report["unanswerable"] = int((~answerable).sum())
    report["gallery"] = int(ranked.shape[1])
    report["chance"] = chance_report(relevant, ks)
    return report
