"""Fusion at several depths, and the mixed (parallel + serial) architecture.

- ``hierarchical``: a low-level fusion over the tokens of all modalities (one Transformer
  encoder layer over :class:`ModalityTokens`, so every token can attend to every other
  modality's tokens, then a masked mean) and a high-level fusion over the pooled vectors (a
  concat MLP over :class:`ModalityVectors`). The two are combined by a learned gate,
  ``g = σ(W [low; high] + b)``, ``fused = g ⊙ low + (1 − g) ⊙ high`` (``combine="gate"``), or
  by an MLP over ``[low; high]`` (``combine="concat"``).
- ``mixed``: a parallel branch (any feature fusion by registry name, default ``gated``) next to
  a serial branch (the ``serial-film`` chain), combined the same way. The parallel branch's
  modality weights, where it reports them, are passed on.

Absent modalities become the learned "missing" token or vector in the parallel parts and are
skipped in the serial chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.fusion.base import (
    Fusion,
    FusionOutput,
    ModalityTokens,
    ModalityVectors,
    check_heads,
    create_fusion,
    fusions,
)
from omnifuse.fusion.serial import SerialFiLMFusion
from omnifuse.nn import masked_mean, mlp
from omnifuse.types import Encoded


class Combine(nn.Module):
    """Merge two (B, D) vectors: a learned element-wise gate (``"gate"``) or an MLP over their
    concatenation (``"concat"``)."""

    def __init__(self, dim: int, mode: str = "gate", dropout: float = 0.0) -> None:
        super().__init__()
        if mode not in ("gate", "concat"):
            raise ConfigError(f"combine must be 'gate' or 'concat', got {mode!r}")
        self.mode = mode
        if mode == "gate":
            self.net: nn.Module = nn.Linear(2 * dim, dim)
        else:
            self.net = mlp(2 * dim, 2 * dim, dim, dropout=dropout)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        both = torch.cat([first, second], dim=-1)  # (B, 2D)
        if self.mode == "concat":
            return self.net(both)
        gate = torch.sigmoid(self.net(both))
        return gate * first + (1 - gate) * second


@fusions.register("hierarchical")
class HierarchicalFusion(Fusion):
    """Token-level (Transformer layer) and vector-level (concat MLP) fusion, combined."""

    uses_tokens = True

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        heads: int = 4,
        max_tokens: int | None = 32,
        hidden: int = 256,
        combine: str = "gate",
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        check_heads(dim, heads)
        self.tokens = ModalityTokens(dims, dim, max_tokens=max_tokens)
        self.token_layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.vectors = ModalityVectors(dims, dim, dropout=dropout)
        self.vector_mlp = mlp(len(self.modalities) * dim, hidden, dim, dropout=dropout)
        self.combine = Combine(dim, combine, dropout)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        tokens, mask, _ = self.tokens(features, present)  # (B, T, D), (B, T)
        tokens = self.token_layer(tokens, src_key_padding_mask=~mask)
        low = masked_mean(tokens, mask)  # (B, D)
        high = self.vector_mlp(self.vectors(features, present).flatten(1))  # (B, D)
        return FusionOutput(fused=self.combine(low, high), tokens=tokens, token_mask=mask)


@fusions.register("mixed")
class MixedFusion(Fusion):
    """Mixed architecture: a parallel fusion and a serial FiLM chain, combined."""

    uses_tokens = True

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        parallel: str = "gated",
        parallel_cfg: Mapping[str, Any] | None = None,
        order: Sequence[str] | None = None,
        max_tokens: int | None = 32,
        combine: str = "gate",
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        self.parallel = create_fusion(
            parallel, dims, **{"dim": dim, "dropout": dropout, **(parallel_cfg or {})}
        )
        if self.parallel.kind != "feature" or self.parallel.dim != dim:
            raise ConfigError(f"mixed needs a feature-level parallel fusion of size {dim}")
        self.serial = SerialFiLMFusion(
            dims, dim=dim, dropout=dropout, order=order, max_tokens=max_tokens
        )
        self.combine = Combine(dim, combine, dropout)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        parallel = self.parallel(features, present)
        serial = self.serial(features, present)
        fused = self.combine(parallel.fused, serial.fused)
        return FusionOutput(fused=fused, weights=parallel.weights)
