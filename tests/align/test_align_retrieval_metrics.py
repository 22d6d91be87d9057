"""Retrieval metrics against scikit-learn, hand-computed values and simulated chance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score

from omnifuse.errors import ConfigError
from omnifuse.eval.retrieval import (
    chance_average_precision,
    chance_mrr,
    chance_recall_at_k,
    chance_report,
    first_relevant_ranks,
    mean_average_precision,
    mrr,
    recall_at_k,
    relevance_from_groups,
    retrieval_report,
)


def _random_problem(seed: int, queries: int = 40, gallery: int = 60) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(queries, gallery))
    relevant = rng.random((queries, gallery)) < 0.08
    relevant[np.arange(queries), rng.integers(gallery, size=queries)] = True
    return scores, relevant


def test_hand_computed_values() -> None:
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.7, 0.1]])
    relevant = np.array([[False, False, True, True], [True, False, False, False]])
    # query 0 ranks 0, 2, 3, 1: relevant at ranks 2 and 3; query 1 ranks 1, 2, 0, 3: rank 3
    assert first_relevant_ranks(scores, relevant).tolist() == [2, 3]
    assert recall_at_k(scores, relevant, 1) == 0.0
    assert recall_at_k(scores, relevant, 2) == 0.5
    assert recall_at_k(scores, relevant, 3) == 1.0
    assert mrr(scores, relevant) == pytest.approx((1 / 2 + 1 / 3) / 2)
    ap0 = (1 / 2 + 2 / 3) / 2
    ap1 = 1 / 3
    assert mean_average_precision(scores, relevant) == pytest.approx((ap0 + ap1) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn(seed: int) -> None:
    scores, relevant = _random_problem(seed)
    per_query = [average_precision_score(relevant[i], scores[i]) for i in range(len(scores))]
    assert mean_average_precision(scores, relevant) == pytest.approx(np.mean(per_query), abs=1e-12)
    lrap = label_ranking_average_precision_score(relevant, scores)
    assert mean_average_precision(scores, relevant) == pytest.approx(lrap, abs=1e-12)


def test_recall_and_mrr_match_a_loop_reference() -> None:
    scores, relevant = _random_problem(3)
    firsts = []
    for row, rel in zip(scores, relevant, strict=True):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        firsts.append(next(rank for rank, j in enumerate(order, 1) if rel[j]))
    for k in (1, 5, 10):
        assert recall_at_k(scores, relevant, k) == pytest.approx(np.mean([f <= k for f in firsts]))
    assert mrr(scores, relevant) == pytest.approx(np.mean([1 / f for f in firsts]))


def test_queries_without_relevant_items_are_left_out_and_counted() -> None:
    scores = np.array([[0.1, 0.9], [0.5, 0.4], [0.3, 0.2]])
    relevant = np.array([[True, False], [True, False], [False, False]])
    report = retrieval_report(scores, relevant, ks=(1,))
    assert report["R@1"] == 0.5
    assert report["queries"] == 2 and report["unanswerable"] == 1 and report["gallery"] == 2
    assert math.isnan(recall_at_k(scores[2:], relevant[2:], 1))


def test_ties_are_broken_by_gallery_order() -> None:
    scores = np.zeros((1, 3))
    assert first_relevant_ranks(scores, np.array([[False, True, False]])).tolist() == [2]


def test_tensors_are_accepted() -> None:
    scores, relevant = _random_problem(4)
    expected = mrr(scores, relevant)
    assert mrr(torch.from_numpy(scores), torch.from_numpy(relevant)) == pytest.approx(expected)


def test_relevance_from_groups() -> None:
    relevant = relevance_from_groups(["a", "b", "a"], ["a", "c", "b", "a"])
    assert relevant.tolist() == [
        [True, False, False, True],
        [False, False, True, False],
        [True, False, False, True],
    ]


def test_chance_levels_match_simulation() -> None:
    rng = np.random.default_rng(0)
    gallery, relevant_count, trials = 12, 3, 20000
    relevant = np.zeros((trials, gallery), dtype=bool)
    relevant[:, :relevant_count] = True
    scores = rng.random((trials, gallery))
    assert recall_at_k(scores, relevant, 2) == pytest.approx(
        chance_recall_at_k(relevant_count, gallery, 2), abs=0.01
    )
    assert mrr(scores, relevant) == pytest.approx(chance_mrr(relevant_count, gallery), abs=0.01)
    assert mean_average_precision(scores, relevant) == pytest.approx(
        chance_average_precision(relevant_count, gallery), abs=0.01
    )


def test_chance_with_one_relevant_item() -> None:
    identity = np.eye(50, dtype=bool)
    chance = chance_report(identity, ks=(1, 5))
    assert chance["R@1"] == pytest.approx(1 / 50)
    assert chance["R@5"] == pytest.approx(5 / 50)
    harmonic = sum(1 / i for i in range(1, 51))
    assert chance["mrr"] == pytest.approx(harmonic / 50)
    assert chance["map"] == pytest.approx(harmonic / 50)


def test_bad_shapes_and_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="one shape"):
        mrr(np.zeros((2, 3)), np.zeros((2, 2), dtype=bool))
    with pytest.raises(ConfigError, match="NaN"):
        mrr(np.array([[np.nan, 1.0]]), np.array([[True, False]]))
    with pytest.raises(ConfigError, match="k must be"):
        recall_at_k(np.zeros((1, 2)), np.ones((1, 2), dtype=bool), 0)
