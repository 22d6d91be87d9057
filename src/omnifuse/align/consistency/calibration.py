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
    slope, bias = (float(v) for v in fit_logistic(s[:, None], labels, weights))
    if slope <= 0:
        raise InvalidValueError(
            "matching pairs are not more similar than mismatching ones; the aligned model "
            "cannot tell them apart (slope ≤ 0)"
        )
    return Platt(slope, bias)


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Weighted logistic regression of ``labels`` on (N, K) ``features`` by Newton's method
    (a small L2 penalty on the K coefficients, none on the bias): the K coefficients, then
    the bias."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64).ravel()
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (len(x) == len(y) == len(w)) or not len(y):
        raise InvalidValueError("similarities, labels and weights must be equally long, not empty")
    if not (y.min() == 0 and y.max() == 1):
        raise InvalidValueError("calibration needs both matching and mismatching pairs")
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)  # (N, K + 1)
    penalty = np.diag([1.0] * (x.shape[1] - 1) + [0.0]) * L2 * w.sum()
    theta = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -60.0, 60.0)))
        grad = x.T @ (w * (p - y)) + penalty @ theta
        hessian = (x * (w * p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta


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
    matched: np.ndarray | None = None
    """The matcher's logits of the same pairs, when a matcher reads this modality pair."""

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
            None if self.matched is None else self.matched[keep],
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


SCORERS = ("cosine", "matcher", "transcript")
"""What a pair's score is: the cosine similarity of the aligned embeddings, the logit of the
aligned model's matcher (:mod:`~omnifuse.align.consistency.matcher`), or its logit for the
recording's transcript (audio–image)."""


@dataclass(frozen=True)
class PairCalibration:
    """How scores of modalities ``a`` and ``b`` (``scorer``: cosine similarities or matcher
    logits) become probabilities, the decision threshold, and the validation figures they were
    fitted on."""

    a: str
    b: str
    platt: Platt
    threshold: float
    val: dict[str, Any] = field(default_factory=dict)
    scorer: str = "cosine"
    mix: tuple[float, float] = (1.0, 0.0)
    """The score is ``mix[0] · cosine similarity + mix[1] · matcher logit``."""

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ConfigError(f"pair {self.a}–{self.b}: unknown scorer {self.scorer!r}")
        if (
            min(self.mix) < 0
            or max(self.mix) <= 0
            or (self.scorer == "cosine") != (self.mix[1] == 0)
        ):
            raise ConfigError(f"pair {self.a}–{self.b}: mix {self.mix} does not fit {self.scorer}")

    def score(self, similarity: Any, matched: Any = 0.0) -> np.ndarray:
        """The calibrated score of cosine similarities and matcher logits."""
        cosine, matcher = self.mix
        return np.asarray(
            cosine * np.asarray(similarity, dtype=np.float64)
            + matcher * np.asarray(matched, dtype=np.float64)
        )

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
            "scorer": self.scorer,
            "mix": list(self.mix),
            "val": self.val,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairCalibration:
        try:
            platt = Platt(float(data["slope"]), float(data["bias"]))
            threshold = float(data["threshold"])
            a, b = str(data["a"]), str(data["b"])
            scorer = str(data.get("scorer", "cosine"))
            cosine, matcher = (float(v) for v in data.get("mix", (1.0, 0.0)))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"a calibrated pair lacks or mistypes {err}") from None
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"pair {a}–{b}: threshold {threshold} is not a probability")
        return cls(a, b, platt, threshold, dict(data.get("val") or {}), scorer, (cosine, matcher))


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The order-free name of a modality pair."""
    first, second = sorted((a, b))
    return first, second


def calibrate_pair(
    a: str, b: str, scores: PairScores, *, keep: float | None = None, scorer: str = "cosine"
) -> PairCalibration:
    """Platt scaling fitted on ``scores``, with its own figures, and the threshold: Youden's,
    or with ``keep`` the one that calls that share of the matching pairs consistent. With the
    matcher's logits (``scorer`` other than cosine), the score is first their blend with the
    cosine similarity that a logistic regression on both finds (the cosine left out when it
    adds nothing)."""
    mix = (1.0, 0.0)
    if scores.matched is not None and scorer != "cosine":
        both = np.stack([scores.similarity, scores.matched], axis=1)
        cosine, matcher, _ = fit_logistic(both, scores.labels, scores.weights)
        if cosine <= 0:
            cosine, matcher = 0.0, 1.0
        if matcher <= 0:
            scorer = "cosine"  # the matcher adds nothing the cosine does not say
        else:
            mix = (float(cosine), float(matcher))
    else:
        scorer = "cosine"
    logits = scores.matched if scores.matched is not None and mix[1] else 0.0
    blended = PairScores(
        np.asarray(mix[0] * scores.similarity + mix[1] * logits),
        scores.labels,
        scores.kinds,
        scores.weights,
    )
    platt = fit_platt(blended.similarity, blended.labels, blended.weights)
    p = platt.probability(blended.similarity)
    if keep is None:
        threshold = youden_threshold(p, blended.labels, blended.weights)
    else:
        threshold = recall_threshold(p, blended.labels, blended.weights, keep)
    val = figures(blended, platt, threshold)
    return PairCalibration(a, b, platt, threshold, val, scorer, mix)
