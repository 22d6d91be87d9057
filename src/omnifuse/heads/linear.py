"""Built-in heads: a classifier (linear or MLP → logits) and a regression head."""

from __future__ import annotations

from typing import Any

import torch

from omnifuse.heads.base import MLPHead, heads


@heads.register("classifier")
class ClassifierHead(MLPHead):
    """Linear layer (``hidden=0``, default) or one-hidden-layer MLP → ``out_dim`` class logits.

    ``dropout`` applies to the head's input (and hidden layer); ``norm`` adds a LayerNorm first.
    """


@heads.register("regression")
class RegressionHead(MLPHead):
    """Linear or MLP head whose outputs are in target units: ``y = mean + std · z``.

    ``mean`` and ``std`` are buffers set once from the training targets by :meth:`calibrate`, so
    the network learns standardised values whatever the targets' scale, and they are saved with
    the model. Options as :class:`~omnifuse.heads.base.MLPHead`.
    """

    def __init__(self, in_dim: int, out_dim: int = 1, **options: Any) -> None:
        super().__init__(in_dim, out_dim, **options)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(out_dim))
        self.register_buffer("std", torch.ones(out_dim))

    def calibrate(self, targets: torch.Tensor) -> None:
        """Set the output scale from training targets (N,) or (N, out_dim)."""
        values = targets.reshape(targets.shape[0], -1).to(self.mean.dtype)
        self.mean.copy_(values.mean(dim=0))
        std = values.std(dim=0) if values.shape[0] > 1 else torch.ones_like(self.std)
        self.std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * super().forward(fused)  # (B, out_dim)
