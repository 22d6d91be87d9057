"""The one training loop (:func:`fit` over an :class:`Objective`) and fusion training on cached
features or raw inputs (:func:`train`, :func:`evaluate`)."""

from omnifuse.train.augment import AugmentConfig, Augmenter
from omnifuse.train.config import TrainConfig, TrainingError, TrainResult
from omnifuse.train.loop import fit, seed_everything
from omnifuse.train.modality_dropout import drop_modalities
from omnifuse.train.objective import Objective
from omnifuse.train.trainer import evaluate, train

__all__ = [
    "AugmentConfig",
    "Augmenter",
    "Objective",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "drop_modalities",
    "evaluate",
    "fit",
    "seed_everything",
    "train",
]
