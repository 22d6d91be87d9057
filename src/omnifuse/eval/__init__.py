"""Evaluation beyond accuracy: missing and noisy modalities, explanations, cost, reports, plots.

Everything here runs a trained fusion model on collated cached-feature batches
(:func:`prepare_batches`); no module imports the trainer, so a sweep (above both) can combine
training and evaluation.
"""

from omnifuse.eval.cost import Cost, measure_cost, parameter_counts
from omnifuse.eval.explain import (
    Ablation,
    ShapleyResult,
    ablation,
    coalition_values,
    modality_shapley,
    modality_weights,
    shapley_values,
)
from omnifuse.eval.inference import predict, prepare_batches, restrict
from omnifuse.eval.noise import NOISES, Noise, get_noise, noises_for
from omnifuse.eval.report import StrategyResult, write_leaderboard
from omnifuse.eval.robustness import (
    NoiseCurve,
    NoiseProbe,
    SubsetScore,
    missing_modality_scores,
    modality_subsets,
)

__all__ = [
    "NOISES",
    "Ablation",
    "Cost",
    "Noise",
    "NoiseCurve",
    "NoiseProbe",
    "ShapleyResult",
    "StrategyResult",
    "SubsetScore",
    "ablation",
    "coalition_values",
    "get_noise",
    "measure_cost",
    "missing_modality_scores",
    "modality_shapley",
    "modality_subsets",
    "modality_weights",
    "noises_for",
    "parameter_counts",
    "predict",
    "prepare_batches",
    "restrict",
    "shapley_values",
    "write_leaderboard",
]
