"""Building a model's encoders from their config entries ``{"name": ..., "seed": ..., **cfg}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from omnifuse import encoders as encoder_registry
from omnifuse.config.schema import encoder_options
from omnifuse.encoders.base import Encoder
from omnifuse.errors import ConfigError


def build_encoder(spec: Mapping[str, Any], *, device: str | torch.device | None = None) -> Encoder:
    """Create the encoder of one entry, its random initialisation seeded by ``spec["seed"]``
    (default 0) without touching the global random state, exactly as the feature cache does."""
    options = encoder_options(spec)
    if device is not None and "device" not in options:
        options["device"] = str(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.get("seed", 0)))
        try:
            return encoder_registry.create(str(spec["name"]), **options)
        except TypeError as err:
            raise ConfigError(f"bad options for encoder {spec['name']!r}: {err}") from None


def encoder_kind(spec: Mapping[str, Any]) -> str:
    """The modality an encoder entry reads (image, audio, text, video), without building it."""
    encoder_registry.list_encoders()
    factory = encoder_registry.encoders.get(str(spec["name"]))
    return str(getattr(factory, "modality", ""))
