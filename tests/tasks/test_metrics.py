"""Metrics against scikit-learn on fixed inputs, and ECE on a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from omnifuse.tasks.metrics import (
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    macro_scores,
    multilabel_scores,
    per_class_scores,
    regression_scores,
    roc_auc,
)

RNG = np.random.default_rng(7)
CLASSES = 6
# class 5 never occurs in targets or predictions; class 4 only in predictions
TARGETS = RNG.integers(0, 4, size=200)
PREDICTIONS = np.where(RNG.random(200) < 0.6, TARGETS, RNG.integers(0, 5, size=200))


def test_accuracy_matches_sklearn() -> None:
    assert accuracy(TARGETS, PREDICTIONS) == pytest.approx(
        skm.accuracy_score(TARGETS, PREDICTIONS), abs=1e-12
    )


def test_accuracy_accepts_tensors() -> None:
    assert accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75


def test_confusion_matrix_matches_sklearn() -> None:
    ours = confusion_matrix(TARGETS, PREDICTIONS, CLASSES)
    theirs = skm.confusion_matrix(TARGETS, PREDICTIONS, labels=list(range(CLASSES)))
    np.testing.assert_array_equal(ours, theirs)


def test_macro_precision_recall_f1_match_sklearn() -> None:
    ours = macro_scores(TARGETS, PREDICTIONS, CLASSES)
    p, r, f, _ = skm.precision_recall_fscore_support(
        TARGETS, PREDICTIONS, average="macro", zero_division=0
    )
    assert ours["precision"] == pytest.approx(p, abs=1e-12)
    assert ours["recall"] == pytest.approx(r, abs=1e-12)
    assert ours["f1"] == pytest.approx(f, abs=1e-12)
    assert ours["f1"] == pytest.approx(skm.f1_score(TARGETS, PREDICTIONS, average="macro"))


def test_per_class_scores_match_sklearn() -> None:
    scores = per_class_scores(confusion_matrix(TARGETS, PREDICTIONS, CLASSES))
    p, r, f, s = skm.precision_recall_fscore_support(
        TARGETS, PREDICTIONS, labels=list(range(CLASSES)), zero_division=0
    )
    np.testing.assert_allclose(scores["precision"], p)
    np.testing.assert_allclose(scores["recall"], r)
    np.testing.assert_allclose(scores["f1"], f)
    np.testing.assert_array_equal(scores["support"], s)


def test_expected_calibration_error_by_hand() -> None:
    # 3 bins. Confidences 0.9 (right), 0.8 (wrong) fall in bin 3; 0.6 (right) and 0.5 (right)
    # in bin 2; none in bin 1.
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    targets = np.array([0, 0, 0, 0])
    # bin 3: |B| = 2, accuracy 0.5, confidence 0.85 → gap 0.35
    # bin 2: |B| = 2, accuracy 1.0, confidence 0.55 → gap 0.45
    expected = 2 / 4 * 0.35 + 2 / 4 * 0.45
    assert expected_calibration_error(probs, targets, bins=3) == pytest.approx(expected)


def test_perfectly_calibrated_predictions_have_zero_ece() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert expected_calibration_error(probs, np.array([0, 1, 0])) == 0.0


def test_multilabel_scores_match_sklearn() -> None:
    y = RNG.random((50, 5)) < 0.4
    p = np.where(RNG.random((50, 5)) < 0.7, y, ~y)
    ours = multilabel_scores(y, p)
    assert ours["micro_f1"] == pytest.approx(skm.f1_score(y, p, average="micro"))
    assert ours["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro"))
    assert ours["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, p))


def test_regression_scores_match_sklearn() -> None:
    y = RNG.normal(size=40)
    p = y + RNG.normal(scale=0.3, size=40)
    ours = regression_scores(y, p)
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert ours["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert ours["r2"] == pytest.approx(skm.r2_score(y, p))


def test_roc_auc_matches_sklearn_with_ties() -> None:
    y = RNG.integers(0, 2, size=60)
    scores = np.round(RNG.random(60) + 0.3 * y, 1)  # rounding makes ties
    assert roc_auc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores))
    assert roc_auc([1, 1], [0.2, 0.3]) == 0.5
