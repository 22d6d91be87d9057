"""A trained model is a folder: ``config.json`` + ``model.safetensors`` + ``metrics.json``.

``config.json`` holds the :class:`ModelConfig` under ``"model"`` with a format tag; the weights
are safetensors (never pickle). Encoders are saved only when the model is end to end, and then
only those that can change (trainable ones); frozen pretrained encoders are rebuilt from their
installed weights, and the fixed feature extractors of a cached-feature model from their config
and seed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from omnifuse.data.schema import write_json_atomic
from omnifuse.errors import ConfigError
from omnifuse.models.config import ModelConfig
from omnifuse.models.fusion_model import FusionModel, build_model

FORMAT = "omnifuse-model"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"


class InvalidModelError(ConfigError):
    """A model folder that cannot be loaded: missing files, a malformed config, wrong weights."""


def model_state(model: FusionModel) -> dict[str, torch.Tensor]:
    """The tensors saved for ``model``: all but the encoders that are not part of its training."""
    keep_encoders = {c for c, e in model.encoders.items() if model.learns(e)}
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("encoders."):
            column = key.split(".", 2)[1]
            if column not in keep_encoders:
                continue
        state[key] = value.detach().to("cpu").contiguous().clone()
    return state


def save_model(
    model: FusionModel, folder: str | Path, metrics: dict[str, Any] | None = None
) -> None:
    """Write the model folder (created if needed; existing files are replaced atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(model_state(model), str(tmp), metadata={"format": FORMAT})
    tmp.replace(folder / WEIGHTS_FILE)
    write_json_atomic(
        folder / CONFIG_FILE,
        {"format": FORMAT, "version": VERSION, "model": model.config.to_dict()},
    )
    write_json_atomic(folder / METRICS_FILE, json_ready(metrics or {}))


def read_config(folder: str | Path) -> ModelConfig:
    """The validated config of a model folder; :class:`InvalidModelError` if it is unusable."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise InvalidModelError(f"{folder} is not a model folder (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidModelError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidModelError(f"{path}: not an omnifuse model config (format tag missing)")
    if data.get("version") != VERSION:
        raise InvalidModelError(f"{path}: unsupported version {data.get('version')!r}")
    try:
        return ModelConfig.from_dict(data.get("model"))
    except (ConfigError, TypeError) as err:
        raise InvalidModelError(f"{path}: {err}") from None


def load_model(folder: str | Path, *, device: str | torch.device = "cpu") -> FusionModel:
    """Rebuild a saved model, in eval mode, on ``device``."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        model = build_model(config)
    except ConfigError as err:
        raise InvalidModelError(f"{folder / CONFIG_FILE}: {err}") from None
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise InvalidModelError(f"{folder} has no {WEIGHTS_FILE}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise InvalidModelError(f"{path}: unreadable weights ({err})") from None
    expected = model_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InvalidModelError(
            f"{path}: weights do not fit the config (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise InvalidModelError(f"{path}: weights do not fit the config ({err})") from None
    return model.to(device).eval()


def read_metrics(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / METRICS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def json_ready(value: Any) -> Any:
    """Metrics as JSON: arrays and tensors become lists, non-finite floats become null."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, torch.Tensor):
        return json_ready(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
