"""Multiplicative feature fusions: tensor, low-rank tensor and factorised bilinear.

Each modality's pooled vector is first projected to its own small size ``z_m`` (a learned
"missing" embedding where the modality is absent: a product cannot skip a factor).

- ``tensor`` (Zadeh et al. 2017): the outer product of ``[z_m; 1]`` over all modalities, which
  holds every unimodal, bimodal, …, M-modal interaction, flattened into a linear layer. Its size
  is ``Π (d_m + 1)``, so configurations above ``max_entries`` are refused.
- ``low-rank-tensor`` (LMF, Liu et al. 2018): the same model with the weight tensor factorised
  into ``rank`` per-modality factors, ``h = Σ_r λ_r Π_m (W_m^(r) [z_m; 1]) + b``, without ever
  building the outer product. MultiBench's AV-MNIST example, ``LowRankTensorFusion([48, 192],
  120, 40)`` with an ``MLP(120, 100, 10)`` head, is
  ``create_fusion("low-rank-tensor", dims, dim=120, rank=40,
  modality_dims={"image": 48, "audio": 192})`` with a 100-unit MLP head over 10 classes.
- ``bilinear`` (MFB, Yu et al. 2017): ``z = SumPool_k(U_1^T x_1 ∘ … ∘ U_M^T x_M)`` then signed
  square root and L2 normalisation. With two modalities this is MFB exactly; with more, the
  factors of all modalities are multiplied (a rank-``k``-per-output factorisation of the M-way
  multilinear form); with one it is a pooled projection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.fusion.base import Fusion, FusionOutput, fusions
from omnifuse.types import Encoded


def modality_sizes(
    modalities: tuple[str, ...], default: int, overrides: Mapping[str, int] | None
) -> dict[str, int]:
    """Projection size of each modality: ``overrides[m]`` where given, else ``default``."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(modalities)
    if unknown:
        raise ConfigError(f"modality_dims names unknown modalities {sorted(unknown)}")
    sizes = {m: int(overrides.get(m, default)) for m in modalities}
    bad = {m: s for m, s in sizes.items() if s < 1}
    if bad:
        raise ConfigError(f"modality sizes must be positive, got {bad}")
    return sizes


class ModalityProjections(nn.Module):
    """Each modality's pooled vector projected to its own size, absent ones replaced by a
    learned "missing" embedding: ``{modality: (B, size_m)}`` in sorted-modality order."""

    def __init__(
        self,
        dims: Mapping[str, int],
        sizes: Mapping[str, int],
        *,
        dropout: float = 0.0,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.modalities = tuple(sorted(dims))
        self.project = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.Linear(dims[m], sizes[m]), nn.LayerNorm(sizes[m]) if norm else nn.Identity()
                )
                for m in self.modalities
            }
        )
        self.missing = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(sizes[m]) * 0.02) for m in self.modalities}
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, features: Mapping[str, Encoded], present: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        batch = present.shape[0]
        out = {}
        for i, m in enumerate(self.modalities):
            filler = self.missing[m].expand(batch, -1)
            if m in features:
                projected = self.project[m](features[m].pooled.to(filler.dtype))
                filler = torch.where(present[:, i : i + 1], projected, filler)
            out[m] = self.drop(filler)
        return out


def _append_one(z: torch.Tensor) -> torch.Tensor:
    """``[z; 1]``: the constant keeps the lower-order (unimodal, bimodal, …) terms."""
    return torch.cat([z, z.new_ones(z.shape[0], 1)], dim=-1)


def outer_product(vectors: list[torch.Tensor]) -> torch.Tensor:
    """Flattened batched outer product of ``[z_m; 1]`` (first modality varies slowest):
    (B, d_1), …, (B, d_M) → (B, Π (d_m + 1))."""
    product = vectors[0].new_ones(vectors[0].shape[0], 1)
    for z in vectors:
        product = (product.unsqueeze(-1) * _append_one(z).unsqueeze(1)).flatten(1)
    return product


@fusions.register("tensor")
class TensorFusion(Fusion):
    """Tensor fusion: ``h = W vec(⊗_m [z_m; 1]) + b`` over small per-modality projections
    ``z_m`` (size ``modality_dim``, or ``modality_dims[m]``)."""

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        modality_dim: int = 16,
        modality_dims: Mapping[str, int] | None = None,
        max_entries: int = 100_000,
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        sizes = modality_sizes(self.modalities, modality_dim, modality_dims)
        entries = math.prod(s + 1 for s in sizes.values())
        if entries > max_entries:
            raise ConfigError(
                f"tensor fusion of sizes {sizes} has {entries} entries, above max_entries="
                f"{max_entries}; use a smaller modality_dim or low-rank-tensor"
            )
        self.sizes = sizes
        self.vectors = ModalityProjections(dims, sizes)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(entries, dim)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        z = self.vectors(features, present)
        product = outer_product([z[m] for m in self.modalities])  # (B, Π (d_m + 1))
        return FusionOutput(fused=self.out(self.drop(product)))


@fusions.register("low-rank-tensor")
class LowRankTensorFusion(Fusion):
    """Low-rank multimodal fusion (LMF): ``h = Σ_r λ_r Π_m (W_m^(r) [z_m; 1]) + b``, the tensor
    fusion whose weight tensor is ``Σ_r λ_r ⊗_m W_m^(r)``; ``z_m`` has size ``modality_dims[m]``
    (default ``dim``)."""

    order_free = True

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        rank: int = 40,
        modality_dims: Mapping[str, int] | None = None,
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        if rank < 1:
            raise ConfigError(f"rank must be at least 1, got {rank}")
        sizes = modality_sizes(self.modalities, dim, modality_dims)
        self.sizes = sizes
        self.rank = rank
        self.vectors = ModalityProjections(dims, sizes, dropout=dropout)
        # each factor W_m^(r) [z_m; 1] starts near unit variance, so products of M stay O(1)
        self.factors = nn.ParameterDict(
            {
                m: nn.Parameter(torch.randn(rank, sizes[m] + 1, dim) / math.sqrt(sizes[m] + 1))
                for m in self.modalities
            }
        )
        self.rank_weights = nn.Parameter(torch.randn(rank) / math.sqrt(rank))
        self.bias = nn.Parameter(torch.zeros(dim))

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        z = self.vectors(features, present)
        factors = [
            torch.einsum("bi,rio->bro", _append_one(z[m]), self.factors[m])  # (B, R, dim)
            for m in self.modalities
        ]
        product = torch.stack(factors).prod(dim=0)
        fused = torch.einsum("bro,r->bo", product, self.rank_weights) + self.bias
        return FusionOutput(fused=fused)


def signed_sqrt(z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Power normalisation ``sign(z) (sqrt(|z| + eps) − sqrt(eps))``: MFB's signed square root,
    continuous and with a finite gradient at 0."""
    return z.sign() * ((z.abs() + eps).sqrt() - math.sqrt(eps))


@fusions.register("bilinear")
class BilinearFusion(Fusion):
    """Multimodal factorised bilinear pooling (MFB): project each modality to ``dim × factor``,
    multiply the projections elementwise, sum-pool each group of ``factor``, then signed square
    root and L2 normalisation (so ``fused`` has unit norm)."""

    order_free = True

    def __init__(self, dims: Mapping[str, int], *, factor: int = 5, **common: Any) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        if factor < 1:
            raise ConfigError(f"factor must be at least 1, got {factor}")
        self.factor = factor
        sizes = dict.fromkeys(self.modalities, dim * factor)
        self.vectors = ModalityProjections(dims, sizes, norm=False)
        self.drop = nn.Dropout(dropout)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        z = self.vectors(features, present)
        joint = torch.stack([z[m] for m in self.modalities]).prod(dim=0)  # (B, dim * factor)
        pooled = self.drop(joint).view(-1, self.dim, self.factor).sum(dim=-1)  # (B, dim)
        fused = nn.functional.normalize(signed_sqrt(pooled), dim=-1)
        return FusionOutput(fused=fused)
