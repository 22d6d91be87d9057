"""Attention-based feature fusions.

- ``attention``: modality attention over pooled vectors, ``u = Σ a_i(v_i) v_i`` with
  ``a = softmax_i(w^T tanh(W v_i + b))`` over the present modalities;
- ``cross-attention``: the tokens of one modality (``query``) attend to the tokens of all others;
- ``transformer``: a Transformer encoder over the tokens of every modality, each tagged with a
  learned modality embedding, read out through a CLS token.

Token fusions build on :class:`~omnifuse.fusion.base.ModalityTokens`: an absent modality is one
learned "missing" token and its real tokens are masked out. ``max_tokens`` average-pools long
sequences (audio frames, video frames) per modality to bound the attention cost.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    fusions,
)
from omnifuse.fusion.pooled import presence_or_all, present_weights
from omnifuse.nn import masked_mean, masked_softmax, mlp
from omnifuse.types import Encoded


@fusions.register("attention")
class AttentionFusion(Fusion):
    """Modality attention: ``u = Σ_i a_i v_i`` with ``a = softmax_i(w^T tanh(W v_i + b))`` over the
    present modalities; one scorer shared by all modalities, so the result is order-free."""

    order_free = True

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        hidden: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        self.vectors = ModalityVectors(dims, dim, dropout=dropout)
        width = hidden or dim
        # no output bias: a shift common to all scores cancels in the softmax
        self.score = nn.Sequential(
            nn.Linear(dim, width), nn.Tanh(), nn.Linear(width, 1, bias=False)
        )

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        v = self.vectors(features, present)  # (B, M, dim)
        scores = self.score(v).squeeze(-1)  # (B, M)
        a = masked_softmax(scores, presence_or_all(present))
        fused = (a.unsqueeze(-1) * v).sum(dim=1)
        return FusionOutput(fused=fused, weights=present_weights(a, present))


@fusions.register("cross-attention")
class CrossAttentionFusion(Fusion):
    """One modality queries the others: the ``query`` modality's tokens (default: the first
    modality by name) attend to the tokens of every other modality; the fused vector is an MLP
    of ``[masked mean of the attended query tokens; masked mean of the context tokens]``.

    ``tokens`` holds the attended query tokens. No per-modality ``weights``: attention mass
    over the context says nothing about how much the query modality itself mattered."""

    uses_tokens = True

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        query: str | None = None,
        heads: int = 4,
        max_tokens: int | None = 32,
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        if len(self.modalities) < 2:
            raise ConfigError("cross-attention needs at least two modalities")
        self.query = query if query is not None else self.modalities[0]
        if self.query not in self.modalities:
            raise ConfigError(f"query modality {self.query!r} is not one of {self.modalities}")
        check_heads(dim, heads)
        self.tokens = ModalityTokens(dims, dim, max_tokens=max_tokens)
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.attend = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_out = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.mlp = mlp(2 * dim, 2 * dim, dim, dropout=dropout)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        tokens, mask, _ = self.tokens(features, present)  # (B, T, dim), (B, T)
        start, end = self.tokens.spans(features)[self.modalities.index(self.query)]
        query, query_mask = tokens[:, start:end], mask[:, start:end]
        context = torch.cat([tokens[:, :start], tokens[:, end:]], dim=1)
        context_mask = torch.cat([mask[:, :start], mask[:, end:]], dim=1)
        context_mask = context_mask | ~context_mask.any(dim=1, keepdim=True)
        keys = self.norm_context(context)
        attended, _ = self.attend(
            self.norm_query(query), keys, keys, key_padding_mask=~context_mask, need_weights=False
        )
        attended = self.norm_out(query + self.drop(attended))  # (B, Tq, dim)
        summary = torch.cat(
            [masked_mean(attended, query_mask), masked_mean(context, context_mask)], dim=-1
        )
        return FusionOutput(fused=self.mlp(summary), tokens=attended, token_mask=query_mask)


class _Block(nn.Module):
    """Pre-norm Transformer encoder layer that also returns its attention map (B, T, T)."""

    def __init__(self, dim: int, heads: int, dropout: float, ff_mult: int) -> None:
        super().__init__()
        self.norm_attend = nn.LayerNorm(dim)
        self.attend = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = mlp(dim, ff_mult * dim, dim, activation=nn.GELU, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm_attend(x)
        attended, attention = self.attend(h, h, h, key_padding_mask=padding, need_weights=True)
        x = x + self.drop(attended)
        x = x + self.drop(self.ff(self.norm_ff(x)))
        return x, attention


@fusions.register("transformer")
class TransformerFusion(Fusion):
    """A Transformer encoder over the tokens of all modalities (each tagged with a learned
    modality embedding) plus a CLS token; the CLS output is the fused vector, the other outputs
    are ``tokens``. ``weights`` are the last layer's CLS attention mass per present modality.

    No positions are added across modalities, so the result does not depend on their order."""

    order_free = True
    uses_tokens = True

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        layers: int = 2,
        heads: int = 4,
        max_tokens: int | None = 32,
        ff_mult: int = 2,
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        if layers < 1:
            raise ConfigError(f"layers must be at least 1, got {layers}")
        check_heads(dim, heads)
        self.tokens = ModalityTokens(dims, dim, max_tokens=max_tokens)
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout, ff_mult) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        tokens, mask, owners = self.tokens(features, present)  # (B, T, dim), (B, T), (T,)
        batch = tokens.shape[0]
        x = torch.cat([self.cls.expand(batch, 1, -1), tokens], dim=1)  # (B, 1 + T, dim)
        valid = torch.cat([mask.new_ones(batch, 1), mask], dim=1)
        attention = x.new_zeros(0)
        for block in self.blocks:
            x, attention = block(x, ~valid)
        x = self.norm(x)
        cls_attention = attention[:, 0, 1:]  # (B, T): how much CLS reads each token
        mass = cls_attention.new_zeros(batch, len(self.modalities)).index_add(
            1, owners.to(x.device), cls_attention
        )
        return FusionOutput(
            fused=x[:, 0],
            tokens=x[:, 1:],
            token_mask=mask,
            weights=present_weights(mass, present),
        )
