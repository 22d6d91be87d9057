"""Calibration of cosine similarities into probabilities: Platt scaling, the threshold, ECE,
AUROC per kind of negative, and the calibration file's round trip."""

from __future__ import annotations

import numpy as np
import pytest

from omnifuse.align.consistency.calibration import (
    L2,
    PairCalibration,
    PairScores,
    Platt,
    calibrate_pair,
    expected_calibration_error,
    fit_platt,
    recall_threshold,
    youden_threshold,
)
from omnifuse.align.consistency.checker import (
    Calibration,
    ConsistencyResult,
    PairVerdict,
    read_calibration,
    write_calibration,
)
from omnifuse.errors import ConfigError, InvalidValueError


def noisy_pairs(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Similarities of matching pairs around 0.6, of mismatching ones around 0.3."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.int64)
    similarity = np.where(labels == 1, 0.6, 0.3) + rng.normal(0, 0.12, n)
    return similarity, labels


def test_platt_is_monotone_and_stays_within_zero_and_one() -> None:
    similarity, labels = noisy_pairs()
    platt = fit_platt(similarity, labels)
    assert platt.slope > 0
    grid = np.linspace(-1.0, 1.0, 401)
    p = platt.probability(grid)
    assert np.all(np.diff(p) >= 0) and np.all(np.diff(p)[150:250] > 0)
    assert np.all((p >= 0) & (p <= 1))
    assert p[0] < 0.01 and p[-1] > 0.99
    assert platt.probability(platt.similarity_at(0.3)) == pytest.approx(0.3)
    extreme = platt.probability(np.array([-1e6, 1e6]))
    assert np.all(np.isfinite(extreme)) and extreme[0] == pytest.approx(0.0, abs=1e-12)


def test_platt_matches_a_weighted_logistic_regression() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    similarity, labels = noisy_pairs(seed=3)
    weights = np.where(labels == 1, 1.0, 0.5)
    ours = fit_platt(similarity, labels, weights)
    penalty = 1.0 / (L2 * weights.sum())  # the same small ridge on the slope as ours
    reference = linear_model.LogisticRegression(C=penalty, tol=1e-12, max_iter=100_000)
    reference.fit(similarity[:, None], labels, sample_weight=weights)
    assert ours.slope == pytest.approx(float(reference.coef_[0, 0]), rel=1e-4)
    assert ours.bias == pytest.approx(float(reference.intercept_[0]), rel=1e-4)


def test_platt_refuses_a_model_that_ranks_mismatches_higher() -> None:
    similarity, labels = noisy_pairs()
    with pytest.raises(InvalidValueError, match="slope"):
        fit_platt(-similarity, labels)
    with pytest.raises(InvalidValueError, match="both"):
        fit_platt(similarity, np.ones_like(labels))
    with pytest.raises(InvalidValueError, match="positive slope"):
        Platt(-1.0, 0.0)


def test_youden_threshold_separates_separable_scores() -> None:
    p = np.array([0.1, 0.2, 0.35, 0.6, 0.7, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    cut = youden_threshold(p, y, np.ones(6))
    assert 0.35 < cut <= 0.6
    # a weight that makes one mistake cheap moves the cut past it
    y2 = np.array([0, 0, 1, 0, 1, 1])
    assert youden_threshold(p, y2, np.array([1, 1, 1, 0.01, 1, 1])) == pytest.approx(0.275)


def test_recall_threshold_keeps_the_share_of_true_pairs_asked_for() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    y = np.array([0, 1, 0, 1, 0, 1, 1, 1])
    ones = np.ones(8)
    assert recall_threshold(p, y, ones, 1.0) == 0.2
    assert recall_threshold(p, y, ones, 0.8) == 0.4  # 4 of 5 true pairs at or above
    assert recall_threshold(p, y, ones, 0.6) == 0.6
    heavy = np.where(p == 0.8, 4.0, 1.0)  # one true pair holding half the weight
    assert recall_threshold(p, y, heavy, 0.5) == 0.8
    scores = PairScores(p, y, ["own" if t else "colour" for t in y], ones)
    pair = calibrate_pair("text", "image", scores, keep=0.8)
    assert pair.val["true_kept"] >= 0.8 and 0 <= pair.val["false_refused"] <= 1


def test_expected_calibration_error() -> None:
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y.astype(float), y) == 0.0
    assert expected_calibration_error(np.full(4, 0.5), y) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(4, 0.9), np.zeros(4)) == pytest.approx(0.9)
    weighted = expected_calibration_error(np.full(3, 0.5), np.array([1, 0, 0]), np.array([2, 1, 1]))
    assert weighted == pytest.approx(0.0)


def test_calibrated_pair_reports_auroc_per_kind_and_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # scene 0 and 1: own pair, a colour edit, a relation edit, another scene's caption
    similarity = np.array([0.8, 0.5, 0.7, 0.1, 0.75, 0.4, 0.8, 0.2])
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0])
    kinds = ["own", "colour", "relation", "other"] * 2
    weights = np.where(labels == 1, 1.0, 1 / 3)
    scores = PairScores(similarity, labels, kinds, weights)
    pair = calibrate_pair("text", "image", scores)
    val = pair.val
    assert val["per_swap"]["colour"] == 1.0 and val["auroc_other"] == 1.0
    assert val["per_swap"]["relation"] == pytest.approx(0.625)  # (1 + ½ + 1 + 0) / 4
    assert val["auroc_swaps"] == pytest.approx(0.8125)
    assert val["pairs"] == 8 and val["positives"] == 2
    assert 0 < pair.threshold < 1
    calibration = Calibration({pair.key: pair}, {"split": "val"})
    write_calibration(tmp_path, calibration)
    back = read_calibration(tmp_path)
    assert back.pair("image", "text") == pair and back.source == {"split": "val"}
    with pytest.raises(ConfigError, match="not a probability"):
        PairCalibration.from_dict({**pair.to_dict(), "threshold": 1.5})
    with pytest.raises(ConfigError, match="format"):
        Calibration.from_dict({"format": "other", "pairs": []})


def test_overall_verdict_is_the_weakest_pair() -> None:
    result = ConsistencyResult(
        (
            PairVerdict("text", "image", 0.5, 0.9, 0.5),
            PairVerdict("text", "audio", 0.4, 0.45, 0.5),
        )
    )
    assert result.probability == 0.45 and not result.consistent
    out = result.to_dict()
    assert [p["verdict"] for p in out["pairs"]] == ["consistent", "inconsistent"]
    assert out["verdict"] == "inconsistent"
