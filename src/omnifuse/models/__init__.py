"""Fusion models: assemble encoders + fusion + head from a :class:`ModelConfig`, save and load
them as folders, and evaluate them on a dataset."""

from omnifuse.models.config import ModelConfig
from omnifuse.models.folder import (
    InvalidModelError,
    load_model,
    read_config,
    read_metrics,
    save_model,
)
from omnifuse.models.fusion_model import FusionModel, ModelOutput, build_model
from omnifuse.models.inference import evaluate, predict_dataset
from omnifuse.models.raw import RawBatch, RawDataset

__all__ = [
    "FusionModel",
    "InvalidModelError",
    "ModelConfig",
    "ModelOutput",
    "RawBatch",
    "RawDataset",
    "build_model",
    "evaluate",
    "load_model",
    "predict_dataset",
    "read_config",
    "read_metrics",
    "save_model",
]
