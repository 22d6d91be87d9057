"""Feature-level fusions over one pooled vector per modality.

Every fusion here first projects each modality's pooled vector to ``dim`` with
:class:`~omnifuse.fusion.base.ModalityVectors` (``v_i``, a learned "missing" embedding where the
modality is absent), then combines the ``v_i``:

- ``concat``: ``h = W2 ReLU(W1 [v_1; …; v_M] + b1) + b2``;
- ``sum``, ``mean``, ``max``: over the present modalities only;
- ``weighted``: ``u = Σ w_i v_i`` with learned ``w = softmax(θ)`` renormalised over the present;
- ``gated``: a gated multimodal unit (GMU), ``h = Σ z_i ⊙ tanh(v_i)`` with per-feature gates
  ``z = softmax_i(W_z [v_1; …; v_M])`` over the present modalities.

The pooling fusions skip absent modalities; a sample with no modality at all falls back to the
missing embeddings of every modality, so its output stays finite and learnable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from omnifuse.fusion.base import Fusion, FusionOutput, ModalityVectors, fusions
from omnifuse.nn import masked_max, masked_mean, masked_softmax, masked_sum, mlp
from omnifuse.types import Encoded


def presence_or_all(present: torch.Tensor) -> torch.Tensor:
    """The modalities to combine per sample: the present ones, or all of them (their missing
    embeddings) for a sample that has none."""
    return present | ~present.any(dim=1, keepdim=True)


def present_weights(mass: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Per-modality explanation weights (B, M): ``mass`` kept on present modalities and
    renormalised to sum to 1; exactly 0 on absent ones, and an all-zero row when none is present.
    Half-precision mass is renormalised in float32 so that rows sum to 1 to float32 precision."""
    if mass.dtype in (torch.float16, torch.bfloat16):
        mass = mass.float()
    kept = mass * present.to(mass.dtype)
    total = kept.sum(dim=1, keepdim=True)
    return torch.where(total > 0, kept / total.clamp(min=torch.finfo(mass.dtype).tiny), 0.0)


@fusions.register("concat")
class ConcatFusion(Fusion):
    """Concatenate the modality vectors and mix them with an MLP:
    ``h = W2 ReLU(W1 F + b1) + b2`` with ``F = [v_1; …; v_M]``."""

    def __init__(self, dims: Mapping[str, int], *, hidden: int = 256, **common: Any) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        self.vectors = ModalityVectors(dims, dim, dropout=dropout)
        self.mlp = mlp(len(self.modalities) * dim, hidden, dim, dropout=dropout)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        v = self.vectors(features, present)  # (B, M, dim)
        return FusionOutput(fused=self.mlp(v.flatten(1)))


class _PooledFusion(Fusion):
    """Shared base of ``sum``, ``mean`` and ``max``: project, then pool over the present with
    ``pool``, a masked reduction over the modality axis."""

    order_free = True

    def __init__(self, dims: Mapping[str, int], **common: Any) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        self.vectors = ModalityVectors(dims, dim, dropout=dropout)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        v = self.vectors(features, present)  # (B, M, dim)
        use = presence_or_all(present)
        return FusionOutput(fused=self.pool(v, use))

    @staticmethod
    def pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, M, dim) vectors and the (B, M) modalities to use → (B, dim)."""
        raise NotImplementedError


@fusions.register("sum")
class SumFusion(_PooledFusion):
    """Sum of the present modality vectors: ``u = Σ_{i present} v_i``."""

    pool = staticmethod(masked_sum)


@fusions.register("mean")
class MeanFusion(_PooledFusion):
    """Mean of the present modality vectors: its scale does not depend on how many are present."""

    pool = staticmethod(masked_mean)


@fusions.register("max")
class MaxFusion(_PooledFusion):
    """Feature-wise maximum over the present modality vectors (max-pooling across modalities)."""

    pool = staticmethod(masked_max)


@fusions.register("weighted")
class WeightedFusion(Fusion):
    """Learned weighted average ``u = Σ w_i v_i``: one learned logit per modality, softmax over the
    modalities present in each sample (initially the plain mean)."""

    order_free = True

    def __init__(self, dims: Mapping[str, int], **common: Any) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        self.vectors = ModalityVectors(dims, dim, dropout=dropout)
        self.logits = nn.Parameter(torch.zeros(len(self.modalities)))

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        v = self.vectors(features, present)  # (B, M, dim)
        logits = self.logits.expand(v.shape[0], -1)  # (B, M)
        w = masked_softmax(logits, presence_or_all(present))
        fused = (w.unsqueeze(-1) * v).sum(dim=1)
        return FusionOutput(fused=fused, weights=present_weights(w, present))


@fusions.register("gated")
class GatedFusion(Fusion):
    """Gated multimodal unit (Arevalo et al. 2017) for any number of modalities:
    ``h = Σ_i z_i ⊙ tanh(v_i)`` with ``z = softmax_i(W_z [v_1; …; v_M] + b_z)`` per feature over
    the present modalities (for two modalities this is GMU's sigmoid gate ``z, 1 − z``).

    The gate sees every modality (missing embeddings for absent ones), so it can learn when to
    trust which; ``weights`` are the gates averaged over features."""

    def __init__(self, dims: Mapping[str, int], **common: Any) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        count = len(self.modalities)
        self.vectors = ModalityVectors(dims, dim, dropout=dropout, norm=False)
        self.gate = nn.Linear(count * dim, count * dim)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        v = self.vectors(features, present)  # (B, M, dim)
        gate_logits = self.gate(v.flatten(1)).view_as(v)  # (B, M, dim)
        z = masked_softmax(gate_logits, presence_or_all(present))
        fused = (z * torch.tanh(v)).sum(dim=1)
        return FusionOutput(fused=fused, weights=present_weights(z.mean(dim=-1), present))
