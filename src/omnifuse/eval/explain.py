"""Which modality mattered: fusion weights, ablation, and exact Shapley values over modalities.

- **Weights**: fusions that weigh modalities per sample (attention, gates, learned late weights)
  return them in ``FusionOutput.weights``; :func:`modality_weights` averages them over a set.
- **Ablation**: the change in accuracy and in the mean true-class probability when one modality
  is removed and the others stay.
- **Shapley values**: the modalities are the players of a cooperative game whose value
  ``v(S)`` is the model's score (mean true-class probability, or accuracy) with only the
  coalition ``S`` present. With M modalities all 2^M coalitions are evaluated, so the values are
  exact, not sampled: ``φ_i = Σ_{S ⊆ N∖{i}} |S|! (M−|S|−1)! / M! · (v(S ∪ {i}) − v(S))``. They
  sum to ``v(N) − v(∅)`` (efficiency), which the tests check.

``v(∅)`` is the model with no modality present (every fusion takes an all-absent sample through
its learned "missing" embeddings). Should a model's output be non-finite there, the empty
coalition falls back to an uninformed guess: probability 1/C for every class.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from omnifuse.data.cache import CachedBatch
from omnifuse.eval.inference import FusionModelLike, model_columns, predict
from omnifuse.types import Predictions

VALUE_FUNCTIONS: dict[str, Callable[[Predictions], float]] = {
    "probability": Predictions.true_class_probability,
    "accuracy": Predictions.accuracy,
}


def shapley_values(
    values: Mapping[frozenset[str], float], players: Sequence[str]
) -> dict[str, float]:
    """Exact Shapley values of ``players`` from the value of every coalition (keys are frozensets,
    the empty one included)."""
    n = len(players)
    missing = [
        set(c)
        for size in range(n + 1)
        for c in itertools.combinations(players, size)
        if frozenset(c) not in values
    ]
    if missing:
        raise ValueError(f"coalition values missing for {missing[:3]}")
    result = {}
    for player in players:
        others = [p for p in players if p != player]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in itertools.combinations(others, size):
                without = frozenset(coalition)
                total += weight * (values[without | {player}] - values[without])
        result[player] = total
    return result


def _check_value(value: str) -> Callable[[Predictions], float]:
    try:
        return VALUE_FUNCTIONS[value]
    except KeyError:
        raise ValueError(f"value must be one of {sorted(VALUE_FUNCTIONS)}, got {value!r}") from None


def coalition_values(
    model: FusionModelLike, batches: Sequence[CachedBatch], *, value: str = "probability"
) -> dict[frozenset[str], float]:
    """``v(S)`` for all 2^M coalitions of the model's modalities (see the module notes on ∅)."""
    score = _check_value(value)
    columns = model_columns(model)
    values: dict[frozenset[str], float] = {}
    for size in range(len(columns) + 1):
        for coalition in itertools.combinations(columns, size):
            predictions = predict(model, batches, coalition)
            if not predictions.finite():
                if coalition:
                    raise ValueError(f"non-finite logits with modalities {coalition} present")
                values[frozenset()] = uninformed_value(predictions, value)
                continue
            values[frozenset(coalition)] = score(predictions)
    return values


def uninformed_value(predictions: Predictions, value: str) -> float:
    """Score of a guess that knows nothing: probability (or expected accuracy) 1/C."""
    del value
    return 1.0 / int(predictions.logits.shape[1])


@dataclass
class ShapleyResult:
    """Shapley values per modality, the coalition values they came from, and which score."""

    values: dict[str, float]
    coalitions: dict[frozenset[str], float]
    value: str

    def efficiency_gap(self) -> float:
        """``Σ φ − (v(N) − v(∅))``: zero up to rounding for exact values."""
        full = max(self.coalitions, key=len)
        return sum(self.values.values()) - (self.coalitions[full] - self.coalitions[frozenset()])


def modality_shapley(
    model: FusionModelLike, batches: Sequence[CachedBatch], *, value: str = "probability"
) -> ShapleyResult:
    """Exact Shapley values of the model's modalities on ``batches``."""
    coalitions = coalition_values(model, batches, value=value)
    return ShapleyResult(shapley_values(coalitions, model_columns(model)), coalitions, value)


@dataclass
class Ablation:
    """What removing one modality costs: the full score minus the score without it."""

    modality: str
    delta_accuracy: float
    delta_true_class_probability: float


def ablation(model: FusionModelLike, batches: Sequence[CachedBatch]) -> list[Ablation]:
    """Δ accuracy and Δ true-class probability when each modality alone is removed."""
    columns = model_columns(model)
    full = predict(model, batches)
    result = []
    for column in columns:
        without = predict(model, batches, [c for c in columns if c != column])
        result.append(
            Ablation(
                column,
                full.accuracy() - without.accuracy(),
                full.true_class_probability() - without.true_class_probability(),
            )
        )
    return result


def modality_weights(model: FusionModelLike, batches: Sequence[CachedBatch]) -> dict[str, float]:
    """Mean per-sample fusion weight of each modality over samples where it is present; empty
    when the fusion gives no weights."""
    predictions = predict(model, batches)
    if predictions.weights is None or predictions.present is None:
        return {}
    present = predictions.present.float()
    totals = (predictions.weights * present).sum(0)
    counts = present.sum(0).clamp(min=1.0)
    return {c: float(w) for c, w in zip(model_columns(model), totals / counts, strict=True)}
