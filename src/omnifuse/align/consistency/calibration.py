"""From a cosine similarity to a calibrated probability, and the figures that judge it.

Platt scaling: ``p = σ(slope · s + bias)``, a logistic regression on the similarity ``s``
fitted by Newton's method on weighted validation pairs (a small L2 penalty keeps it finite
when the classes separate). The slope must come out positive — a higher similarity may never
mean a lower probability — so the map is monotone by construction and in (0, 1).

Weights: each scene's own pair carries weight 1 and its negatives share weight 1 between them,
so positives and negatives weigh the same and the probability reads against an even prior
("given nothing else, as likely to match as not"). The decision threshold maximises Youden's
J (true-positive rate minus false-positive rate) on the same weighted pairs; the expected
calibration error is the weighted gap between the mean probability and the fraction of true
pairs in ten equal-width probability bins. A check that acts on a refusal (the assistant's
premise check) takes instead the threshold that keeps a set share of the true pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnifuse.errors import ConfigError, InvalidValueError
from omnifuse.tasks.metrics import roc_auc

ECE_BINS = 10
L2 = 1e-6


@dataclass(frozen=True)
class Platt:
    """``σ(slope · similarity + bias)``; ``slope`` is positive."""

    slope: float
    bias: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slope) and math.isfinite(self.bias)) or self.slope <= 0:
            raise InvalidValueError(
                f"a calibration needs a finite positive slope and a finite bias, "
                f"got {self.slope}, {self.bias}"
            )

    def probability(self, similarity: Any) -> np.ndarray:
        """Probabilities of cosine similarities (any shape)."""
        z = self.slope * np.asarray(similarity, dtype=np.float64) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))))

    def similarity_at(self, probability: float) -> float:
        """The similarity whose probability is ``probability`` (the inverse map)."""
        p = min(max(probability, 1e-12), 1 - 1e-12)
        return (math.log(p / (1 - p)) - self.bias) / self.slope


def fit_platt(
    similarity: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> Platt:
    """The weighted logistic regression of ``labels`` (1: same thing) on ``similarity``."""
    s = np.asarray(similarity, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (len(s) == len(y) == len(w)) or not len(s):
        raise InvalidValueError("similarities, labels and weights must be equally long, not empty")
    if not (y.min() == 0 and y.max() == 1):
        raise InvalidValueError("calibration needs both matching and mismatching pairs")
    x = np.stack([s, np.ones_like(s)], axis=1)  # (N, 2)
    theta = np.zeros(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -60.0, 60.0)))
        grad = x.T @ (w * (p - y)) + L2 * w.sum() * np.array([theta[0], 0.0])
        hessian = (x * (w * p * (1 - p))[:, None]).T @ x + L2 * w.sum() * np.diag([1.0, 0.0])
        step = np.linalg.solve(hessian + 1e-9 * np.eye(2), grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    slope, bias = float(theta[0]), float(theta[1])
    if slope <= 0:
        raise InvalidValueError(
            "matching pairs are not more similar than mismatching ones; the aligned model "
            "cannot tell them apart (slope ≤ 0)"
        )
    return Platt(slope, bias)


def youden_threshold(probability: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """The probability threshold (``p ≥ t`` means consistent) that maximises the weighted
    true-positive rate minus false-positive rate; midway between neighbouring scores."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    w = np.asarray(weights, dtype=np.float64)
    candidates = np.unique(p)
    cuts = np.concatenate([candidates[:1], (candidates[1:] + candidates[:-1]) / 2])
    best, best_j = 0.5, -np.inf
    for cut in cuts:
        said = p >= cut
        tpr = w[said & y].sum() / w[y].sum()
        fpr = w[said & ~y].sum() / w[~y].sum()
        if tpr - fpr > best_j:
            best, best_j = float(cut), float(tpr - fpr)
    return best


def recall_threshold(
    probability: np.ndarray, labels: np.ndarray, weights: np.ndarray, keep: float
) -> float:
    """The highest probability threshold that still calls at least ``keep`` of the (weighted)
    matching pairs consistent: for a check whose false alarms cost more than its misses."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(-p[y])
    kept = np.cumsum(w[y][order]) / w[y].sum()
    return float(p[y][order][int(np.searchsorted(kept, keep - 1e-12))])


def expected_calibration_error(
    probability: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """``Σ_b W_b/W · |mean_w(label) − mean_w(p)|`` over :data:`ECE_BINS` equal-width bins of p."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
    which = np.clip(np.ceil(p * ECE_BINS).astype(np.int64) - 1, 0, ECE_BINS - 1)
    total = np.bincount(which, weights=w, minlength=ECE_BINS)
    gap = np.abs(
        np.bincount(which, weights=w * y, minlength=ECE_BINS)
        - np.bincount(which, weights=w * p, minlength=ECE_BINS)
    )
    return float(gap.sum() / total.sum()) if total.sum() else 0.0


@dataclass
class PairScores:
    """Cosine similarities of one modality pair over a set of scenes: ``labels`` 1 for a
    scene's own pair, ``kinds`` what each negative is (``colour``, ``shape``, ``count``,
    ``relation`` or ``other`` for another scene's), ``weights`` as the module says."""

    similarity: np.ndarray
    labels: np.ndarray
    kinds: list[str]
    weights: np.ndarray

    def select(self, kinds: set[str]) -> PairScores:
        """The positives and the negatives of ``kinds``."""
        keep = np.array(
            [y == 1 or k in kinds for y, k in zip(self.labels, self.kinds, strict=True)]
        )
        return PairScores(
            self.similarity[keep],
            self.labels[keep],
            [k for k, kept in zip(self.kinds, keep, strict=True) if kept],
            self.weights[keep],
        )


def figures(scores: PairScores, platt: Platt, threshold: float) -> dict[str, Any]:
    """AUROC of positives against all, one-attribute-swap and other-scene negatives (None
    without any), and per swap kind; ECE; balanced accuracy at the threshold; the number of
    pairs."""
    p = platt.probability(scores.similarity)
    y = scores.labels.astype(bool)
    w = scores.weights
    swaps = sorted({k for k, label in zip(scores.kinds, y, strict=True) if not label} - {"other"})
    out: dict[str, Any] = {
        "pairs": len(y),
        "positives": int(y.sum()),
        "auroc": roc_auc(y, scores.similarity),
        "auroc_swaps": roc_auc(*_subset(scores, set(swaps))),
        "auroc_other": roc_auc(*_subset(scores, {"other"})) if "other" in scores.kinds else None,
        "per_swap": {k: roc_auc(*_subset(scores, {k})) for k in swaps},
        "ece": expected_calibration_error(p, y, w),
        "balanced_accuracy": _balanced_accuracy(p >= threshold, y, w),
        "true_kept": float(w[(p >= threshold) & y].sum() / w[y].sum()),
        "false_refused": float(w[(p < threshold) & ~y].sum() / w[~y].sum()),
    }
    return out


def _subset(scores: PairScores, kinds: set[str]) -> tuple[np.ndarray, np.ndarray]:
    chosen = scores.select(kinds)
    return chosen.labels, chosen.similarity


def _balanced_accuracy(said: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    tpr = w[said & y].sum() / max(w[y].sum(), 1e-12)
    tnr = w[~said & ~y].sum() / max(w[~y].sum(), 1e-12)
    return float((tpr + tnr) / 2)


@dataclass(frozen=True)
class PairCalibration:
    """How similarities of modalities ``a`` and ``b`` become probabilities, the decision
    threshold, and the validation figures they were fitted on."""

    a: str
    b: str
    platt: Platt
    threshold: float
    val: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return pair_key(self.a, self.b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "slope": self.platt.slope,
            "bias": self.platt.bias,
            "threshold": self.threshold,
            "threshold_similarity": self.platt.similarity_at(self.threshold),
            "val": self.val,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairCalibration:
        try:
            platt = Platt(float(data["slope"]), float(data["bias"]))
            threshold = float(data["threshold"])
            a, b = str(data["a"]), str(data["b"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"a calibrated pair lacks or mistypes {err}") from None
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"pair {a}–{b}: threshold {threshold} is not a probability")
        return cls(a, b, platt, threshold, dict(data.get("val") or {}))


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The order-free name of a modality pair."""
    first, second = sorted((a, b))
    return first, second


def calibrate_pair(
    a: str, b: str, scores: PairScores, *, keep: float | None = None
) -> PairCalibration:
    """Platt scaling fitted on ``scores``, with its own figures, and the threshold: Youden's,
    or with ``keep`` the one that calls that share of the matching pairs consistent."""
    platt = fit_platt(scores.similarity, scores.labels, scores.weights)
    p = platt.probability(scores.similarity)
    if keep is None:
        threshold = youden_threshold(p, scores.labels, scores.weights)
    else:
        threshold = recall_threshold(p, scores.labels, scores.weights, keep)
    return PairCalibration(a, b, platt, threshold, figures(scores, platt, threshold))
