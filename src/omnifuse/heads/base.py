"""Heads: the last layer of a fusion model, from the fused vector to the task's outputs.

A head maps ``(B, in_dim)`` to ``(B, out_dim)``; the task decides what the outputs mean (class
logits, regression values). Heads are built by name from the ``heads`` registry, so a model
config names its head as plain data.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.nn import mlp
from omnifuse.registry import Registry


class Head(nn.Module):
    """Base class: ``in_dim`` features in, ``out_dim`` outputs out."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1:
            raise ConfigError(f"a head needs positive sizes, got in_dim={in_dim}, {out_dim=}")
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MLPHead(Head):
    """Linear layer (``hidden=0``, default) or one-hidden-layer ReLU MLP, ``in_dim → out_dim``.

    ``dropout`` applies to the head's input (and hidden layer); ``norm`` adds a LayerNorm first.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        hidden: int = 0,
        dropout: float = 0.0,
        norm: bool = False,
    ) -> None:
        super().__init__(in_dim, out_dim)
        if hidden < 0:
            raise ConfigError(f"hidden must be >= 0, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [nn.LayerNorm(in_dim)] if norm else []
        layers.append(nn.Dropout(dropout))
        if hidden == 0:
            layers.append(nn.Linear(in_dim, out_dim))
        else:
            layers += mlp(in_dim, hidden, out_dim, dropout=dropout)
        self.net = nn.Sequential(*layers)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.net(fused)  # (B, out_dim)


heads: Registry[Head] = Registry("head", builtin_modules=("omnifuse.heads.linear",))


def create_head(name: str, in_dim: int, out_dim: int, **cfg: Any) -> Head:
    """Build head ``name`` from ``in_dim`` fused features to ``out_dim`` outputs."""
    try:
        return heads.create(name, in_dim=in_dim, out_dim=out_dim, **cfg)
    except TypeError as err:
        raise ConfigError(f"bad options for head {name!r}: {err}") from None
