"""Training fusion models on cached features or raw inputs: :func:`train`, :func:`evaluate`."""

from omnifuse.train.augment import AugmentConfig, Augmenter
from omnifuse.train.config import TrainConfig, TrainingError, TrainResult
from omnifuse.train.modality_dropout import drop_modalities
from omnifuse.train.trainer import evaluate, seed_everything, train

__all__ = [
    "AugmentConfig",
    "Augmenter",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "drop_modalities",
    "evaluate",
    "seed_everything",
    "train",
]
