"""Feature-level fusions over one pooled vector per modality."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from omnifuse.fusion.base import Fusion, FusionOutput, ModalityVectors, fusions
from omnifuse.types import Encoded


@fusions.register("concat")
class ConcatFusion(Fusion):
    """Concatenate the modality vectors and mix them with an MLP:
    ``h = W2 ReLU(W1 F + b1) + b2`` with ``F = [v_1; …; v_M]``."""

    def __init__(
        self, dims: Mapping[str, int], *, dim: int = 128, dropout: float = 0.1, hidden: int = 256
    ) -> None:
        super().__init__(dims, dim=dim, dropout=dropout)
        self.vectors = ModalityVectors(dims, dim, dropout=dropout)
        self.mlp = nn.Sequential(
            nn.Linear(len(self.modalities) * dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        v = self.vectors(features, present)  # (B, M, dim)
        return FusionOutput(fused=self.mlp(v.flatten(1)))
