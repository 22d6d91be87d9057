"""Evaluation metrics as plain functions of labels and predictions (NumPy arrays or tensors).

Conventions follow scikit-learn so results can be compared with it: macro averages run over the
classes that occur in the targets or the predictions, and a ratio with a zero denominator is 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata


def to_numpy(values: Any) -> np.ndarray:
    """A tensor (any device or dtype), array or list as a NumPy array."""
    if isinstance(values, torch.Tensor):
        return (
            values.detach().to("cpu", torch.float64 if values.is_floating_point() else None).numpy()
        )
    return np.asarray(values)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def accuracy(targets: Any, predictions: Any) -> float:
    """Fraction of samples whose predicted class is the target class."""
    y, p = to_numpy(targets).ravel(), to_numpy(predictions).ravel()
    return float(np.mean(y == p)) if y.size else 0.0


def confusion_matrix(targets: Any, predictions: Any, num_classes: int) -> np.ndarray:
    """(C, C) counts: row = target class, column = predicted class."""
    y = to_numpy(targets).astype(np.int64).ravel()
    p = to_numpy(predictions).astype(np.int64).ravel()
    flat = np.bincount(y * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix."""
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    precision = _divide(tp, predicted)
    recall = _divide(tp, support)
    f1 = _divide(2 * tp, predicted + support)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def macro_scores(targets: Any, predictions: Any, num_classes: int) -> dict[str, float]:
    """Macro precision, recall and F1 over the classes seen in targets or predictions."""
    confusion = confusion_matrix(targets, predictions, num_classes)
    scores = per_class_scores(confusion)
    seen = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    if not seen.any():
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    return {name: float(scores[name][seen].mean()) for name in ("precision", "recall", "f1")}


def macro_f1(targets: Any, predictions: Any, num_classes: int) -> float:
    return macro_scores(targets, predictions, num_classes)["f1"]


def expected_calibration_error(probabilities: Any, targets: Any, *, bins: int = 15) -> float:
    """ECE: ``Σ_b |B_b|/N · |accuracy(B_b) − confidence(B_b)|`` over equal-width confidence bins.

    The confidence of a sample is its highest class probability; bin ``b`` holds confidences in
    ``((b-1)/bins, b/bins]``.
    """
    probs = to_numpy(probabilities).astype(np.float64)
    y = to_numpy(targets).astype(np.int64).ravel()
    if not y.size:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    gap = np.abs(
        np.bincount(which, weights=correct, minlength=bins)
        - np.bincount(which, weights=confidence, minlength=bins)
    )
    return float(gap.sum() / y.size) if count.sum() else 0.0


def multilabel_scores(targets: Any, predictions: Any) -> dict[str, float]:
    """Micro and macro F1 and subset accuracy of (N, C) 0/1 targets and predictions.

    The macro average runs over labels that occur in targets or predictions (as scikit-learn's
    per-label F1 with zero division set to 0 would, restricted to labels that were seen).
    """
    y = to_numpy(targets).astype(bool)
    p = to_numpy(predictions).astype(bool)
    tp = (y & p).sum(axis=0).astype(np.float64)
    fp = (~y & p).sum(axis=0).astype(np.float64)
    fn = (y & ~p).sum(axis=0).astype(np.float64)
    micro = float(_divide(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum()))
    per_label = _divide(2 * tp, 2 * tp + fp + fn)
    seen = (tp + fp + fn) > 0
    macro = float(per_label[seen].mean()) if seen.any() else 0.0
    subset = float(np.mean(np.all(y == p, axis=1))) if y.shape[0] else 0.0
    return {"micro_f1": micro, "macro_f1": macro, "subset_accuracy": subset}


def regression_scores(targets: Any, predictions: Any) -> dict[str, float]:
    """MAE, RMSE and R² (uniform average over outputs; 0 when the targets are constant)."""
    y = to_numpy(targets).astype(np.float64).reshape(len(to_numpy(targets)), -1)
    p = to_numpy(predictions).astype(np.float64).reshape(y.shape)
    error = p - y
    residual = (error**2).sum(axis=0)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(total > 0, 1.0 - _divide(residual, total), 0.0)
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "r2": float(r2.mean()),
    }


def roc_auc(targets: Any, scores: Any) -> float:
    """Area under the ROC curve of binary targets: the probability that a random positive
    scores above a random negative (ties count one half); 0.5 when a class is missing."""
    y = to_numpy(targets).astype(bool).ravel()
    s = to_numpy(scores).astype(np.float64).ravel()
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return 0.5
    ranks = rankdata(s)  # average ranks, ties share
    rank_sum = ranks[y].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))
