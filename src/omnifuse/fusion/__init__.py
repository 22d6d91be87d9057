"""Fusion strategies behind one contract (:class:`~omnifuse.fusion.base.Fusion`).

Feature-level fusions combine per-modality vectors or tokens into one vector for a head;
decision-level fusions combine per-modality predictions; hybrid fusions do both.
"""

from __future__ import annotations

from omnifuse.fusion.base import Fusion, FusionOutput, create_fusion, fusions


def load_builtin_fusions() -> None:
    """Import the built-in fusion modules (once); lookups in ``fusions`` do it by themselves."""
    fusions.load_builtins()


def list_fusions() -> list[str]:
    load_builtin_fusions()
    return fusions.list()


__all__ = ["Fusion", "FusionOutput", "create_fusion", "fusions", "list_fusions"]
