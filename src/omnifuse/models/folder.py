"""A trained model is a folder: ``config.json`` + ``model.safetensors`` + ``metrics.json``.

``config.json`` holds the :class:`ModelConfig` under ``"model"`` with a format tag; the weights
are safetensors (never pickle). Encoders are saved only when the model is end to end, and then
only those that can change (trainable ones); frozen pretrained encoders are rebuilt from their
installed weights, and the fixed feature extractors of a cached-feature model from their config
and seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from omnifuse.errors import ConfigError
from omnifuse.fileio import FolderFormat, cpu_state
from omnifuse.models.config import ModelConfig
from omnifuse.models.fusion_model import FusionModel, build_model


class InvalidModelError(ConfigError):
    """A model folder that cannot be loaded: missing files, a malformed config, wrong weights."""


MODEL_FOLDER = FolderFormat("omnifuse-model", "model", InvalidModelError)


def model_state(model: FusionModel) -> dict[str, torch.Tensor]:
    """The tensors saved for ``model``: all but the encoders that are not part of its training."""
    keep_encoders = {c for c, e in model.encoders.items() if model.learns(e)}

    def keep(key: str) -> bool:
        return not key.startswith("encoders.") or key.split(".", 2)[1] in keep_encoders

    return cpu_state(model, keep)


def save_model(
    model: FusionModel, folder: str | Path, metrics: dict[str, Any] | None = None
) -> None:
    """Write the model folder (created if needed; existing files are replaced atomically)."""
    MODEL_FOLDER.write(folder, model_state(model), {"model": model.config.to_dict()}, metrics or {})


def read_config(folder: str | Path) -> ModelConfig:
    """The validated config of a model folder; :class:`InvalidModelError` if it is unusable."""
    data = MODEL_FOLDER.read_config(folder)
    try:
        return ModelConfig.from_dict(data.get("model"))
    except (ConfigError, TypeError) as err:
        raise InvalidModelError(f"{Path(folder) / MODEL_FOLDER.config_file}: {err}") from None


def load_model(folder: str | Path, *, device: str | torch.device = "cpu") -> FusionModel:
    """Rebuild a saved model, in eval mode, on ``device``; a folder written by ``omnifuse
    export`` or ``quantize`` runs its fusion and head in onnxruntime (on the CPU)."""
    config = read_config(folder)
    try:
        model = build_model(config)
    except ConfigError as err:
        raise InvalidModelError(f"{Path(folder) / MODEL_FOLDER.config_file}: {err}") from None
    MODEL_FOLDER.load_weights(model, folder, keys=model_state(model))
    from omnifuse.models.exported import ExportInfo, OnnxFusionModel

    info = ExportInfo.read(folder)
    if info is not None:
        return OnnxFusionModel(model.eval(), Path(folder), info)
    return model.to(device).eval()


def read_metrics(folder: str | Path) -> dict[str, Any]:
    return MODEL_FOLDER.read_metrics(folder)
