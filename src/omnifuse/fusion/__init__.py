"""Fusion strategies behind one contract (:class:`~omnifuse.fusion.base.Fusion`).

Feature-level fusions combine per-modality vectors or tokens into one vector for a head;
decision-level fusions combine per-modality predictions; hybrid fusions do both.
"""

from __future__ import annotations

import importlib

from omnifuse.fusion.base import Fusion, FusionOutput, create_fusion, fusions

BUILTIN_MODULES = (
    "omnifuse.fusion.pooled",
    "omnifuse.fusion.tensor",
    "omnifuse.fusion.attention",
    "omnifuse.fusion.late",
    "omnifuse.fusion.serial",
    "omnifuse.fusion.hierarchical",
)

_loaded = False


def load_builtin_fusions() -> None:
    """Import the fusion modules so their ``@fusions.register`` decorators run (once)."""
    global _loaded
    if _loaded:
        return
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    _loaded = True


def list_fusions() -> list[str]:
    load_builtin_fusions()
    return fusions.list()


__all__ = ["Fusion", "FusionOutput", "create_fusion", "fusions", "list_fusions"]
