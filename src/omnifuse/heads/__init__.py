"""Heads map the fused vector to a task's outputs: ``create_head(name, in_dim, out_dim)``."""

from __future__ import annotations

from omnifuse.heads.base import Head, create_head, heads


def load_builtin_heads() -> None:
    """Import the built-in head modules (once); lookups in ``heads`` do it by themselves."""
    heads.load_builtins()


def list_heads() -> list[str]:
    load_builtin_heads()
    return heads.list()


__all__ = ["Head", "create_head", "heads", "list_heads", "load_builtin_heads"]
