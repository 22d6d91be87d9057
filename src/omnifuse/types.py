"""Shared typed values passed between layers."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

Sample = dict[str, Any]
"""Modality name → raw input (text, path, bytes, array, PIL image, ...), plus targets."""


class Encoded(NamedTuple):
    """What every encoder returns for a batch.

    ``tokens`` (B, T, D) are the per-position features (words, image patches, audio frames, video
    frames); ``mask`` (B, T) is True where a token is real, False where it is padding; ``pooled``
    (B, D) is one vector per sample, pooled over the real tokens only.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Encoded:
        return Encoded(
            self.tokens.to(device=device, dtype=dtype),
            self.mask.to(device=device),
            self.pooled.to(device=device, dtype=dtype),
        )


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens of each sample: (B, T, D), (B, T) → (B, D); all-padding → 0."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (tokens * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp(min=1.0)
    return total / count


def pad_tokens(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length (T_i, D) sequences into (B, T_max, D) plus the (B, T_max) mask."""
    if not sequences:
        raise ValueError("no sequences to pad")
    longest = max(int(s.shape[0]) for s in sequences)
    dim = int(sequences[0].shape[-1])
    tokens = sequences[0].new_zeros((len(sequences), longest, dim))
    mask = torch.zeros((len(sequences), longest), dtype=torch.bool, device=sequences[0].device)
    for i, seq in enumerate(sequences):
        tokens[i, : seq.shape[0]] = seq
        mask[i, : seq.shape[0]] = True
    return tokens, mask
