"""Encoders for every modality behind one interface: ``create(name, **cfg)``, ``list()``.

Pretrained encoders load their weights from installed packages (offline); trainable ones start
from random weights for end-to-end training. All return :class:`~omnifuse.types.Encoded`.
"""

from __future__ import annotations

from typing import Any

from omnifuse.encoders.base import Encoder, encoders


def create(name: str, **cfg: Any) -> Encoder:
    """Build encoder ``name`` with its config (e.g. ``device="cuda"``, ``dtype="bf16"``)."""
    return encoders.create(name, **cfg)


def list_encoders() -> list[str]:
    return encoders.list()


def describe(name: str) -> str:
    return encoders.describe(name)


__all__ = ["Encoder", "create", "describe", "encoders", "list_encoders"]
