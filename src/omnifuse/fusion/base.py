"""The fusion contract: per-modality features plus a presence mask in, one fused vector out.

Every fusion takes ``features: Mapping[str, Encoded]`` and ``present: (B, M)`` (True where sample
b has modality m, columns in ``self.modalities`` order, which is sorted by name) and returns a
:class:`FusionOutput`. A modality may be absent for some samples (``present`` False) or for the
whole batch (missing from ``features``); fusions then use a learned "missing" embedding in its
place, or leave it out where the operation allows (means, attention), never its zeros as if real.

Decision-level fusions (``kind = "decision"``) return class ``logits`` instead of a feature
vector for a head: they own one head per modality.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.nn import downsample_tokens
from omnifuse.registry import Registry
from omnifuse.types import Encoded


@dataclass
class FusionOutput:
    """``fused`` (B, D) for a head; optional fused ``tokens`` (B, T, D) with ``token_mask``;
    optional per-modality ``weights`` (B, M), rows summing to 1 over present modalities, for
    explanations; ``logits`` (B, C) from decision-level fusions with ``modality_logits``."""

    fused: torch.Tensor
    tokens: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    modality_logits: dict[str, torch.Tensor] | None = None


class Fusion(nn.Module):
    """Base class. ``dims`` maps modality name → input feature size; ``dim`` is the output size
    and ``dropout`` the dropout rate inside the fusion: the options every fusion takes, which
    subclasses pass on as ``**common`` and read back as ``self.dim`` and ``self.dropout_p``.

    Subclasses implement :meth:`fuse`; :meth:`forward` checks the inputs first.
    """

    kind: ClassVar[str] = "feature"  # or "decision"
    order_free: ClassVar[bool] = False  # True when permuting modalities cannot change the result
    uses_tokens: ClassVar[bool] = False  # True when the fusion reads token sequences

    def __init__(self, dims: Mapping[str, int], *, dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        if not dims:
            raise ConfigError("a fusion needs at least one modality")
        if dim < 1:
            raise ConfigError(f"dim must be positive, got {dim}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.modalities: tuple[str, ...] = tuple(sorted(dims))
        self.dims = {m: int(dims[m]) for m in self.modalities}
        self.dim = dim
        self.dropout_p = dropout

    def forward(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        batch = _batch_size(features, present, self.modalities)
        if present.shape != (batch, len(self.modalities)):
            raise ValueError(
                f"present must be (B={batch}, M={len(self.modalities)}), got {tuple(present.shape)}"
            )
        unknown = set(features) - set(self.modalities)
        if unknown:
            raise ValueError(
                f"unexpected modalities {sorted(unknown)}; fusion has {self.modalities}"
            )
        present = present.bool()
        for i, m in enumerate(self.modalities):
            if m not in features and present[:, i].any():
                raise ValueError(f"modality {m!r} is marked present but has no features")
        return self.fuse(features, present)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        raise NotImplementedError


def _batch_size(
    features: Mapping[str, Encoded], present: torch.Tensor, modalities: tuple[str, ...]
) -> int:
    """The batch size (left symbolic while the model is traced for export, not fixed)."""
    for m in modalities:
        if m in features:
            return features[m].pooled.shape[0]
    return present.shape[0]


class ModalityVectors(nn.Module):
    """Pooled features of every modality projected to one size, absent ones replaced by a
    learned "missing" embedding: ``(B, M, dim)``. The building block of most feature fusions."""

    def __init__(
        self, dims: Mapping[str, int], dim: int, *, dropout: float = 0.0, norm: bool = True
    ) -> None:
        super().__init__()
        self.modalities = tuple(sorted(dims))
        self.project = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Linear(dims[m], dim), nn.LayerNorm(dim) if norm else nn.Identity()
                )
                for m in self.modalities
            }
        )
        self.missing = nn.Parameter(torch.randn(len(self.modalities), dim) * 0.02)
        self.drop = nn.Dropout(dropout)

    def forward(self, features: Mapping[str, Encoded], present: torch.Tensor) -> torch.Tensor:
        batch = present.shape[0]
        columns = []
        for i, m in enumerate(self.modalities):
            filler = self.missing[i].expand(batch, -1)
            if m in features:
                projected = self.project[m](features[m].pooled.to(self.missing.dtype))
                columns.append(torch.where(present[:, i : i + 1], projected, filler))
            else:
                columns.append(filler)
        return self.drop(torch.stack(columns, dim=1))  # (B, M, dim)


class ModalityTokens(nn.Module):
    """Token sequences of every modality projected to one size, each with a learned modality
    embedding; an absent modality becomes a single learned "missing" token. Returns the
    concatenated ``(B, sum T_m, dim)`` tokens, their mask and the modality index of each token."""

    def __init__(self, dims: Mapping[str, int], dim: int, *, max_tokens: int | None = None) -> None:
        super().__init__()
        self.modalities = tuple(sorted(dims))
        self.project = nn.ModuleDict({m: nn.Linear(dims[m], dim) for m in self.modalities})
        self.modality_embedding = nn.Parameter(torch.randn(len(self.modalities), dim) * 0.02)
        self.missing = nn.Parameter(torch.randn(len(self.modalities), dim) * 0.02)
        self.max_tokens = max_tokens

    def forward(
        self, features: Mapping[str, Encoded], present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = present.shape[0]
        tokens, masks, owners = [], [], []
        for i, m in enumerate(self.modalities):
            missing = (self.missing[i] + self.modality_embedding[i]).view(1, 1, -1)
            missing = missing.expand(batch, 1, -1)
            absent = ~present[:, i]
            if m in features:
                enc = features[m]
                seq, mask = enc.tokens, enc.mask
                if self.max_tokens is not None and seq.shape[1] > self.max_tokens:
                    seq, mask = downsample_tokens(seq, mask, self.max_tokens)
                seq = self.project[m](seq.to(self.missing.dtype)) + self.modality_embedding[i]
                mask = mask & present[:, i : i + 1]
                tokens += [seq, missing]
                masks += [mask, absent.unsqueeze(1)]
                owners.append(
                    torch.full((seq.shape[1] + 1,), i, dtype=torch.long, device=present.device)
                )
            else:
                tokens.append(missing)
                masks.append(torch.ones(batch, 1, dtype=torch.bool, device=present.device))
                owners.append(torch.full((1,), i, dtype=torch.long, device=present.device))
        return torch.cat(tokens, dim=1), torch.cat(masks, dim=1), torch.cat(owners)

    def spans(self, features: Mapping[str, Encoded]) -> list[tuple[int, int]]:
        """Where each modality's tokens (its "missing" token included) lie in what
        :meth:`forward` returns: contiguous ``(start, end)`` column ranges, from shapes alone."""
        spans, start = [], 0
        for m in self.modalities:
            length = 1
            if m in features:
                count = features[m].tokens.shape[1]
                if self.max_tokens is not None and count > self.max_tokens:
                    count = self.max_tokens
                length = count + 1
            spans.append((start, start + length))
            start += length
        return spans


def check_heads(dim: int, heads: int) -> None:
    """Multi-head attention splits ``dim`` evenly across ``heads``."""
    if heads < 1 or dim % heads:
        raise ConfigError(f"heads must be a positive divisor of dim={dim}, got {heads}")


fusions: Registry[Fusion] = Registry(
    "fusion",
    builtin_modules=(
        "omnifuse.fusion.pooled",
        "omnifuse.fusion.tensor",
        "omnifuse.fusion.attention",
        "omnifuse.fusion.late",
        "omnifuse.fusion.serial",
        "omnifuse.fusion.hierarchical",
    ),
)


def create_fusion(name: str, dims: Mapping[str, int], **cfg: Any) -> Fusion:
    """Build fusion ``name`` over modalities ``dims`` (name → feature size)."""
    return fusions.create(name, dims=dims, **cfg)
