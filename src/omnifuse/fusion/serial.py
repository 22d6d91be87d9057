"""Serial architectures: the modalities form a chain in which each one conditions the next.

The chain runs over ``order`` (default: sorted modality names) and starts from a learned initial
state, so the first modality is processed like every other and a chain with a modality left out
is exactly the chain over the remaining ones. At each step the modality's projected tokens are
conditioned on the current state, pooled (masked mean) into a step output ``r``, and the state
moves on; a sample that lacks the modality keeps its state unchanged (a per-sample ``where`` on
the presence mask, no branching on the batch).

- ``serial-film``: the state is a vector ``c``; the tokens get a FiLM transform
  ``γ(c) ⊙ x + β(c)``, then ReLU; ``c ← LayerNorm(c + W r)``.
- ``serial-xattn``: the state is a token sequence (at first ``start_tokens`` learned tokens);
  the modality's tokens attend to it (pre-norm cross-attention plus a feed-forward block) and
  become the new state.

Sequences longer than ``max_tokens`` are average-pooled to that length first (the
cross-attention chain costs ``T_prev × T_next`` per step).

The fused vector is ``Linear([state; skip])`` where ``skip`` is the mean of the step outputs of
the present modalities: a skip connection from every step, so the first modalities of a long
chain reach the output directly and not only through the later states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.fusion.base import Fusion, FusionOutput, check_heads, fusions
from omnifuse.nn import downsample_tokens, masked_mean, mlp
from omnifuse.types import Encoded


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``γ ⊙ x + β`` with ``γ = 1 + Δγ(c)`` and ``β = β(c)``
    predicted from a condition ``c`` by one linear layer (zero weights give the identity)."""

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.to_gamma_beta = nn.Linear(cond_dim, 2 * dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        delta_gamma, beta = self.to_gamma_beta(cond).chunk(2, dim=-1)  # (B, D) each
        return (1 + delta_gamma).unsqueeze(1) * x + beta.unsqueeze(1)  # (B, T, D)


def chain_order(modalities: Sequence[str], order: Sequence[str] | None) -> tuple[str, ...]:
    """Validate ``order``: a permutation of ``modalities`` (sorted when None)."""
    if order is None:
        return tuple(modalities)
    if sorted(order) != sorted(modalities):
        raise ConfigError(f"order {list(order)} must list each modality {list(modalities)} once")
    return tuple(order)


class SerialFusion(Fusion):
    """Base of the chains: token projections, the skip mean and the output layer."""

    uses_tokens = True

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        order: Sequence[str] | None = None,
        max_tokens: int | None = 32,
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens must be positive, got {max_tokens}")
        self.order = chain_order(self.modalities, order)
        self.max_tokens = max_tokens
        self.project = nn.ModuleDict({m: nn.Linear(self.dims[m], dim) for m in self.modalities})
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * dim, dim)

    def steps(
        self, features: Mapping[str, Encoded], present: torch.Tensor
    ) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The chain's steps on this batch: (modality, projected tokens (B, T, D), token mask,
        per-sample "take this step" (B,)). Modalities missing from the batch are left out; a
        present modality whose tokens are all padding counts as absent."""
        column = {m: i for i, m in enumerate(self.modalities)}
        dtype = self.out.weight.dtype
        chosen = []
        for m in self.order:
            if m not in features:
                continue
            tokens, mask = features[m].tokens.to(dtype), features[m].mask.bool()
            if self.max_tokens is not None and tokens.shape[1] > self.max_tokens:
                tokens, mask = downsample_tokens(tokens, mask, self.max_tokens)
            take = present[:, column[m]] & mask.any(dim=1)
            chosen.append((m, self.project[m](tokens), mask, take))
        return chosen

    def finish(
        self, state: torch.Tensor, outputs: list[torch.Tensor], takes: list[torch.Tensor]
    ) -> torch.Tensor:
        """``Linear([state; mean of the present steps' outputs])``."""
        skip = state.new_zeros(state.shape)
        count = state.new_zeros(state.shape[0], 1)
        for r, take in zip(outputs, takes, strict=True):
            skip = skip + torch.where(take.unsqueeze(1), r, torch.zeros_like(r))
            count = count + take.unsqueeze(1).to(state.dtype)
        return self.out(torch.cat([state, skip / count.clamp(min=1.0)], dim=1))


@fusions.register("serial-film")
class SerialFiLMFusion(SerialFusion):
    """Serial: a chain in which each modality's tokens are FiLM-conditioned on the state."""

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        order: Sequence[str] | None = None,
        max_tokens: int | None = 32,
        **common: Any,
    ) -> None:
        super().__init__(dims, order=order, max_tokens=max_tokens, **common)
        dim = self.dim
        self.start = nn.Parameter(torch.randn(dim) * 0.02)
        self.film = nn.ModuleDict({m: FiLM(dim, dim) for m in self.modalities})
        self.step_out = nn.ModuleDict({m: nn.Linear(dim, dim) for m in self.modalities})
        self.norm = nn.ModuleDict({m: nn.LayerNorm(dim) for m in self.modalities})

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        state = self.start.to(self.out.weight.dtype).expand(present.shape[0], -1)  # (B, D)
        outputs, takes = [], []
        for m, tokens, mask, take in self.steps(features, present):
            h = torch.relu(self.film[m](tokens, state))  # (B, T, D)
            r = self.drop(self.step_out[m](masked_mean(h, mask)))  # (B, D)
            state = torch.where(take.unsqueeze(1), self.norm[m](state + r), state)
            outputs.append(r)
            takes.append(take)
        return FusionOutput(fused=self.finish(state, outputs, takes))


class CrossAttentionBlock(nn.Module):
    """Pre-norm block: queries attend to a context sequence, then a feed-forward layer; both
    residual."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = mlp(dim, 2 * dim, dim, activation=nn.GELU, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        kv = self.norm_kv(context)
        attended, _ = self.attn(
            self.norm_q(x), kv, kv, key_padding_mask=~context_mask, need_weights=False
        )
        x = x + self.drop(attended)  # (B, T, D)
        return x + self.drop(self.ff(self.norm_ff(x)))


@fusions.register("serial-xattn")
class SerialCrossAttentionFusion(SerialFusion):
    """Serial: a chain in which each modality's tokens cross-attend to the previous state tokens."""

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        order: Sequence[str] | None = None,
        max_tokens: int | None = 32,
        heads: int = 4,
        start_tokens: int = 4,
        **common: Any,
    ) -> None:
        super().__init__(dims, order=order, max_tokens=max_tokens, **common)
        dim, dropout = self.dim, self.dropout_p
        check_heads(dim, heads)
        if start_tokens < 1:
            raise ConfigError(f"start_tokens must be positive, got {start_tokens}")
        self.start = nn.Parameter(torch.randn(start_tokens, dim) * 0.02)
        self.blocks = nn.ModuleDict(
            {m: CrossAttentionBlock(dim, heads, dropout) for m in self.modalities}
        )
        self.step_out = nn.ModuleDict({m: nn.Linear(dim, dim) for m in self.modalities})

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        batch = present.shape[0]
        state = self.start.to(self.out.weight.dtype).expand(batch, -1, -1)  # (B, S, D)
        state_mask = torch.ones(state.shape[:2], dtype=torch.bool, device=present.device)
        outputs, takes = [], []
        for m, tokens, mask, take in self.steps(features, present):
            h = self.blocks[m](tokens, state, state_mask)  # (B, T, D)
            outputs.append(self.drop(self.step_out[m](masked_mean(h, mask))))
            takes.append(take)
            state, state_mask = _select_sequence(take, (h, mask), (state, state_mask))
        pooled_state = masked_mean(state, state_mask)
        return FusionOutput(fused=self.finish(pooled_state, outputs, takes))


def _select_sequence(
    take: torch.Tensor,
    new: tuple[torch.Tensor, torch.Tensor],
    old: tuple[torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the new (tokens, mask) where ``take`` else the old, padded to one length."""
    length = max(new[0].shape[1], old[0].shape[1])

    def pad(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        extra = length - tokens.shape[1]
        return F.pad(tokens, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)

    new_tokens, new_mask = pad(*new)
    old_tokens, old_mask = pad(*old)
    tokens = torch.where(take.view(-1, 1, 1), new_tokens, old_tokens)
    chosen = take.view(-1, 1)  # boolean logic, not a where over booleans (which ONNX lacks)
    return tokens, (new_mask & chosen) | (old_mask & ~chosen)
