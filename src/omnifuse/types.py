"""Shared typed values passed between layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass
class Predictions:
    """A model's outputs over a whole set, on the CPU: ``logits`` (N, C), the ``labels`` they
    are scored against (the task's targets), the fusion's modality ``weights`` (N, M) when it
    reports them, and where known the ``present`` mask (N, M), the sample ``names`` and their
    manifest ``rows`` (for grouped metrics)."""

    logits: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor | None = None
    present: torch.Tensor | None = None
    names: list[str] | None = None
    rows: list[Mapping[str, Any]] | None = None

    @property
    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.logits.float(), dim=-1)

    @property
    def predicted(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def accuracy(self) -> float:
        return float((self.predicted == self.labels).double().mean())

    def true_class_probability(self) -> float:
        """Mean probability given to the true class: a smooth companion of accuracy."""
        p = self.probabilities.gather(1, self.labels.long().unsqueeze(1))
        return float(p.double().mean())

    def finite(self) -> bool:
        return bool(torch.isfinite(self.logits).all())
