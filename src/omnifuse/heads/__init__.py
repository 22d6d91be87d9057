"""Heads map the fused vector to a task's outputs: ``create_head(name, in_dim, out_dim)``."""

from __future__ import annotations

import importlib

from omnifuse.heads.base import Head, create_head, heads

BUILTIN_MODULES = ("omnifuse.heads.linear",)

_loaded = False


def load_builtin_heads() -> None:
    """Import the head modules so their ``@heads.register`` decorators run (once)."""
    global _loaded
    if _loaded:
        return
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    _loaded = True


def list_heads() -> list[str]:
    load_builtin_heads()
    return heads.list()


__all__ = ["Head", "create_head", "heads", "list_heads", "load_builtin_heads"]
