"""Encoders for every modality behind one interface: ``create(name, **cfg)``, ``list()``.

Pretrained encoders load their weights from installed packages (offline); trainable ones start
from random weights for end-to-end training. All return :class:`~omnifuse.types.Encoded`.
"""

from __future__ import annotations

import importlib
from typing import Any

from omnifuse.encoders.base import Encoder, encoders

BUILTIN_MODULES = (
    "omnifuse.encoders.text",
    "omnifuse.encoders.text_trainable",
    "omnifuse.encoders.image",
    "omnifuse.encoders.image_trainable",
    "omnifuse.encoders.audio",
    "omnifuse.encoders.audio_trainable",
    "omnifuse.encoders.video",
)

_loaded = False


def _load_builtin_encoders() -> None:
    """Import the encoder modules so their ``@encoders.register`` decorators run (once)."""
    global _loaded
    if _loaded:
        return
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    _loaded = True


def create(name: str, **cfg: Any) -> Encoder:
    """Build encoder ``name`` with its config (e.g. ``device="cuda"``, ``dtype="bf16"``)."""
    _load_builtin_encoders()
    return encoders.create(name, **cfg)


def list_encoders() -> list[str]:
    _load_builtin_encoders()
    return encoders.list()


def describe(name: str) -> str:
    _load_builtin_encoders()
    return encoders.describe(name)


__all__ = ["Encoder", "create", "describe", "encoders", "list_encoders"]
