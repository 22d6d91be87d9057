"""Projection heads: one modality's frozen-encoder features → the shared, L2-normalised space.

A head first reduces an item to one vector — the encoder's pooled vector (``pool="mean"``) or a
learned attention pooling over its token features (``pool="attention"``: a few learned queries
attend over the tokens, with a learned bias per position so a query can favour a grid region or
a stretch of speech) — then projects it (``kind="linear"``, or ``"mlp"``: two layers with GELU) and
L2-normalises. A ``locked`` head keeps its initial weights (LiT-style locked tower): its linear
projection starts semi-orthogonal, so it preserves the encoder's geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.nn import attention_pool, masked_mean, mlp, stride_pool

HEAD_KINDS = ("linear", "mlp")
POOLS = ("mean", "attention")


@dataclass(frozen=True)
class HeadConfig:
    """Projection-head settings: output ``dim``; ``kind`` linear or a 2-layer MLP of
    ``hidden`` units; ``pool`` the encoder's pooled vector (mean) or learned multi-query
    attention over its tokens (``queries``, at most ``max_tokens`` tokens averaged over runs of
    ``stride``); ``dropout``; ``locked`` heads never learn (LiT)."""

    dim: int = 256
    kind: str = "mlp"
    hidden: int = 512
    pool: str = "mean"
    queries: int = 4
    max_tokens: int = 512
    stride: int = 1
    dropout: float = 0.1
    locked: bool = False

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"head.kind {self.kind!r} is not one of {HEAD_KINDS}")
        if self.pool not in POOLS:
            raise ConfigError(f"head.pool {self.pool!r} is not one of {POOLS}")
        for name in ("dim", "hidden", "queries", "max_tokens", "stride"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"head.{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"head.dropout must be in [0, 1), got {self.dropout}")

    @property
    def uses_tokens(self) -> bool:
        return self.pool == "attention"


@dataclass(frozen=True, kw_only=True)
class HeadSpec(HeadConfig):
    """The shape of one head (what ``config.json`` stores to rebuild it): its settings and the
    size of the features it reads."""

    input_dim: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.input_dim) < 1:
            raise ConfigError(f"head input_dim must be at least 1, got {self.input_dim}")


class AttentionPool(nn.Module):
    """Multi-query attentive pooling in the encoder's own feature space.

    Each of ``queries`` learned queries scores every (layer-normalised) token by a content term
    ``x_t · k_q`` plus a learned bias for the token's position (so a query can favour a region of
    an image grid or a stretch of a sentence), takes the masked softmax over the tokens, and
    returns the weighted sum of the tokens. The outputs of all queries and the plain masked mean
    are concatenated, (B, (Q + 1) · D_in). Scoring and summing in the input space costs
    O(T · D_in · Q) per item — far less than projecting every token first — which keeps
    training on hundreds of whisper frames per utterance cheap on a CPU.
    """

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.max_tokens = spec.max_tokens
        self.norm = nn.LayerNorm(spec.input_dim)
        self.keys = nn.Linear(spec.input_dim, spec.queries)
        self.positions = nn.Parameter(torch.zeros(spec.max_tokens, spec.queries))
        self.out_dim = spec.input_dim * (spec.queries + 1)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm(tokens)  # (B, T, D)
        steps = torch.arange(x.shape[1], device=x.device).clamp(max=self.max_tokens - 1)
        scores = self.keys(x) * x.shape[-1] ** -0.5 + self.positions[steps]  # (B, T, Q)
        attended = attention_pool(x, mask, scores)  # (B, Q, D); all-padding rows → 0
        return torch.cat([attended.flatten(1), masked_mean(x, mask)], dim=1)


class ProjectionHead(nn.Module):
    """Features of one modality → unit vectors in the shared space (see the module docstring)."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.spec = spec
        self.pool = AttentionPool(spec) if spec.uses_tokens else None
        width = self.pool.out_dim if self.pool is not None else spec.input_dim
        self.proj: nn.Module
        if spec.kind == "linear":
            linear = nn.Linear(width, spec.dim, bias=False)
            nn.init.orthogonal_(linear.weight)
            self.proj = nn.Sequential(nn.Dropout(spec.dropout), linear)
        else:
            self.proj = mlp(width, spec.hidden, spec.dim, activation=nn.GELU, dropout=spec.dropout)
        if spec.locked:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> ProjectionHead:
        """A locked head stays in eval mode (no dropout), whatever mode its owner is put in."""
        return super().train(mode and not self.spec.locked)

    def prepare_tokens(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """An encoder's tokens as :meth:`forward` takes them (averaged over ``stride`` steps).
        Training applies it once per item when the features are loaded."""
        return stride_pool(tokens, mask, self.spec.stride)

    def forward(
        self,
        pooled: torch.Tensor,
        tokens: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, D_in) pooled features, or prepared (B, T, D_in) tokens + (B, T) mask → (B, dim)
        unit rows."""
        if self.pool is not None:
            if tokens is None or mask is None:
                raise ValueError("an attention-pooling head needs tokens and their mask")
            features = self.pool(tokens, mask)
        else:
            features = pooled
        return F.normalize(self.proj(features), dim=-1)
