"""Symmetric InfoNCE (the CLIP loss) with duplicate-aware targets and optional hard negatives.

For L2-normalised embeddings ``a`` (B, D) and ``b`` (B, D) the logits are
``logit_scale · a @ bᵀ``; row ``i`` of ``a`` should pick column ``i`` of ``b`` and vice versa, and
the loss is the mean of the two cross-entropies (a→b over rows, b→a over columns).

Duplicates. Paired data often repeats a caption (two scenes described by the same words, one
sentence spoken by several voices, a class caption shared by every image of the class). Plain
CLIP targets make each copy a negative of the others' partners: a false negative that rewards
pushing matching items apart. ``groups`` (B,) marks interchangeable items: every item of the
same group is a positive, and the target of a row is spread evenly over its positives (a
soft-target cross-entropy, so the loss floor of a group of ``n`` is ``log n`` instead of 0). With
all groups distinct this is exactly CLIP's loss. When one side of the copies is identical (the
same text embeds to the same vector), its columns cannot be told apart and the two targets give
the same loss; the groups matter where both sides vary within a group — speech in different
voices against images, or ``group_by`` a label coarser than the text.

Hard negatives. With ``hard_beta`` > 0 the negatives of each row are re-weighted by
``exp(hard_beta · sim)`` (normalised to mean 1 over the row's negatives), following Robinson et
al., "Contrastive Learning with Hard Negative Samples" (ICLR 2021): the most similar wrong items
weigh most in the denominator. The weights are treated as constants (no gradient).
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_LOGIT_SCALE = 100.0
DEFAULT_TEMPERATURE = 0.07


def positives(groups: torch.Tensor | None, size: int, device: torch.device) -> torch.Tensor:
    """(B, B) bool: True where two items share a group (the diagonal when ``groups`` is None)."""
    if groups is None:
        return torch.eye(size, dtype=torch.bool, device=device)
    if groups.shape != (size,):
        raise ValueError(f"groups must have shape ({size},), got {tuple(groups.shape)}")
    return groups.unsqueeze(0) == groups.unsqueeze(1)


def _negative_weights(
    similarity: torch.Tensor, positive: torch.Tensor, hard_beta: float
) -> torch.Tensor:
    """Per-row weights of the negatives (1 for positives), mean 1 over each row's negatives."""
    if hard_beta <= 0:
        return torch.ones_like(similarity)
    with torch.no_grad():
        raw = torch.exp(hard_beta * similarity).masked_fill(positive, 0.0)
        count = (~positive).sum(dim=1, keepdim=True).clamp(min=1)
        scaled = raw * count / raw.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return scaled.masked_fill(positive, 1.0)


def _directional(
    logits: torch.Tensor, positive: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Soft-target cross-entropy of each row over its columns, averaged over rows."""
    targets = positive.to(logits.dtype)
    targets = targets / targets.sum(dim=1, keepdim=True)
    log_norm = torch.logsumexp(logits + torch.log(weights), dim=1, keepdim=True)
    return -(targets * (logits - log_norm)).sum(dim=1).mean()


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    logit_scale: torch.Tensor | float,
    *,
    groups: torch.Tensor | None = None,
    hard_beta: float = 0.0,
) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of ``a`` and ``b`` (both (B, D), L2-normalised).

    ``logit_scale`` is the multiplier of the cosine similarities (1 / temperature, already
    exponentiated, as open_clip passes it). ``groups`` and ``hard_beta``: see the module
    docstring.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be paired (B, D) matrices, got {a.shape} and {b.shape}")
    similarity = a @ b.T  # (B, B)
    logits = logit_scale * similarity
    positive = positives(groups, a.shape[0], a.device)
    weights_ab = _negative_weights(similarity, positive, hard_beta)
    weights_ba = _negative_weights(similarity.T, positive.T, hard_beta)
    return 0.5 * (
        _directional(logits, positive, weights_ab) + _directional(logits.T, positive.T, weights_ba)
    )


class LogitScale(nn.Module):
    """A learnable log inverse temperature, initialised at log(1 / 0.07) as in CLIP; its value is
    clamped at 100 so the logits cannot grow without bound."""

    def __init__(self, temperature: float = DEFAULT_TEMPERATURE, *, learnable: bool = True):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        value = torch.tensor(math.log(1.0 / temperature))
        self.log_scale = nn.Parameter(value, requires_grad=learnable)

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)
