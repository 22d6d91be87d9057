"""Modality dropout: hide whole modalities at random during training, never all of them."""

from __future__ import annotations

import torch


def drop_modalities(
    present: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each present modality of each sample is hidden with probability ``p``; a sample that
    would lose all of them keeps one, chosen uniformly among its present ones. Samples with no
    modality stay as they are. Runs on ``present``'s device without reading values back."""
    if p <= 0.0:
        return present
    noise = torch.rand(present.shape, device=present.device, generator=generator)  # (B, M)
    keep = present & (noise >= p)
    lost = present.any(dim=1) & ~keep.any(dim=1)  # (B,)
    # all present noise values are below p here, and uniform there: the largest picks fairly
    pick = torch.where(present, noise, torch.full_like(noise, -1.0)).argmax(dim=1)  # (B,)
    restore = torch.nn.functional.one_hot(pick, present.shape[1]).bool() & lost.unsqueeze(1)
    return keep | restore
