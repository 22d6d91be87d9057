"""Decision-level (late) fusions and the hybrid of feature- and decision-level fusion.

Each modality gets its own head (an MLP on its pooled feature → class logits); a combiner turns
the heads' predictions into one prediction, using only the modalities present in each sample:

- ``late-mean``: the mean of the present heads' log-probabilities, i.e. the normalised geometric
  mean of their probabilities (a product of experts with equal exponents). Averaging
  log-probabilities rather than raw logits makes heads with different logit scales comparable.
- ``late-weighted``: the same with learned per-modality weights, ``softmax`` over the present
  modalities only (so they renormalise when one is missing); reported in ``FusionOutput.weights``.
- ``late-stacking``: a small MLP over the concatenated per-modality probabilities (absent ones
  zeroed) plus the presence bits. It is trained end to end with the heads, not on held-out
  predictions as in classic stacking.

A sample with no modality present gets a learned prior (bias) instead. The combined logits are
both ``logits`` and ``fused``. The per-modality heads also learn from the combined loss, but a
head whose modality is often outvoted learns slowly: a task may add the per-modality losses as an
auxiliary term, from ``FusionOutput.modality_logits`` (see :func:`modality_cross_entropy`).

``hybrid`` runs a feature-level fusion with its own classifier next to a decision-level fusion
and mixes the two predictions by a learned gate or by the mean of their log-probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.fusion.base import Fusion, FusionOutput, create_fusion, fusions
from omnifuse.nn import masked_softmax, mlp
from omnifuse.types import Encoded


def modality_head(in_dim: int, hidden: int, num_classes: int, dropout: float) -> nn.Module:
    """The per-modality classifier: LayerNorm, then a linear layer (``hidden == 0``) or a
    one-hidden-layer MLP. The norm keeps encoders with very different feature scales on par."""
    if hidden == 0:
        return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, num_classes))
    return nn.Sequential(nn.LayerNorm(in_dim), *mlp(in_dim, hidden, num_classes, dropout=dropout))


class LateFusion(Fusion):
    """Base of the decision-level fusions: one head per modality and a :meth:`combine` step.

    ``head_hidden`` is the hidden size of each head (default ``dim``; 0 for a linear head).
    """

    kind = "decision"

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        num_classes: int,
        head_hidden: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        if num_classes < 1:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        hidden = dim if head_hidden is None else head_hidden
        if hidden < 0:
            raise ConfigError(f"head_hidden must be >= 0, got {hidden}")
        self.num_classes = num_classes
        self.heads = nn.ModuleDict(
            {m: modality_head(self.dims[m], hidden, num_classes, dropout) for m in self.modalities}
        )
        self.prior = nn.Parameter(torch.randn(num_classes) * 0.02)

    def head_logits(
        self, features: Mapping[str, Encoded], present: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Each head's logits on the modalities given in ``features`` and the (B, M, C) stack
        in which modalities missing from the batch are zeros (``present`` is False there)."""
        dtype = self.prior.dtype
        per_modality: dict[str, torch.Tensor] = {}
        columns = []
        for m in self.modalities:
            if m in features:
                per_modality[m] = self.heads[m](features[m].pooled.to(dtype))
                columns.append(per_modality[m])
            else:
                columns.append(self.prior.new_zeros(present.shape[0], self.num_classes))
        return per_modality, torch.stack(columns, dim=1)  # (B, M, C)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        per_modality, stacked = self.head_logits(features, present)
        logits, weights = self.combine(stacked, present)
        return FusionOutput(
            fused=logits, logits=logits, weights=weights, modality_logits=per_modality
        )

    def combine(
        self, logits: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, M, C) per-modality logits and the (B, M) presence mask → combined (B, C) logits
        and optional (B, M) modality weights."""
        raise NotImplementedError

    def with_prior(self, logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Replace the rows of samples that have no modality by the learned prior."""
        nothing = ~present.any(dim=1, keepdim=True)  # (B, 1)
        return torch.where(nothing, self.prior.expand_as(logits), logits)


def weighted_log_probs(
    logits: torch.Tensor, present: torch.Tensor, scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``softmax(scores)`` over the present modalities of each sample (absent → 0) and
    the weighted sum of the present modalities' log-probabilities.

    ``logits`` (B, M, C), ``present`` (B, M) bool, ``scores`` (M,) or (B, M). Rows without any
    present modality get all-zero weights and a zero sum.
    """
    weights = masked_softmax(scores.expand(present.shape), present)  # (B, M)
    log_probs = torch.log_softmax(logits, dim=-1)
    log_probs = torch.where(present.unsqueeze(-1), log_probs, torch.zeros_like(log_probs))
    return (weights.unsqueeze(-1) * log_probs).sum(dim=1), weights


@fusions.register("late-mean")
class LateMeanFusion(LateFusion):
    """Decision-level: mean of the present modality heads' log-probabilities."""

    order_free = True

    def combine(
        self, logits: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        combined, weights = weighted_log_probs(logits, present, logits.new_zeros(present.shape))
        return self.with_prior(combined, present), weights


@fusions.register("late-weighted")
class LateWeightedFusion(LateFusion):
    """Decision-level: learned modality weights, renormalised over the present modalities."""

    order_free = True

    def __init__(self, dims: Mapping[str, int], **cfg: Any) -> None:
        super().__init__(dims, **cfg)
        self.weight_scores = nn.Parameter(torch.zeros(len(self.modalities)))

    def combine(
        self, logits: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        combined, weights = weighted_log_probs(logits, present, self.weight_scores)
        return self.with_prior(combined, present), weights


@fusions.register("late-stacking")
class LateStackingFusion(LateFusion):
    """Decision-level: an MLP over the heads' probabilities (absent zeroed) and presence bits."""

    def __init__(
        self, dims: Mapping[str, int], *, stack_hidden: int | None = None, **cfg: Any
    ) -> None:
        super().__init__(dims, **cfg)
        hidden = self.dim if stack_hidden is None else stack_hidden
        width = len(self.modalities) * (self.num_classes + 1)
        self.stacker = mlp(width, hidden, self.num_classes, dropout=self.dropout_p)

    def combine(
        self, logits: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        bits = present.unsqueeze(-1)  # (B, M, 1)
        probs = torch.where(bits, torch.softmax(logits, dim=-1), torch.zeros_like(logits))
        inputs = torch.cat([probs.flatten(1), present.to(logits.dtype)], dim=1)
        return self.with_prior(self.stacker(inputs), present), None


@fusions.register("hybrid")
class HybridFusion(Fusion):
    """Hybrid: a feature-level fusion with its own classifier plus a decision-level fusion,
    their predictions mixed by a learned gate (``combine="gate"``) or by the mean of their
    log-probabilities (``combine="mean"``).

    ``feature`` / ``feature_cfg`` and ``decision`` / ``decision_cfg`` name and configure the two
    parts (any registered fusions of the right kind). The gate ``g = σ(w·[h; present] + b)`` is
    computed per sample from the feature-level vector ``h`` and the presence bits, and the output
    is ``g·log p_feature + (1 − g)·log p_decision``. ``weights`` mixes the parts' modality
    weights by the same gate where both report them, else passes on the one that does.
    ``modality_logits`` are the decision part's. Whether tokens are read depends on the
    feature part: see ``self.feature.uses_tokens`` (the class attribute stays False).
    """

    kind = "decision"

    def __init__(
        self,
        dims: Mapping[str, int],
        *,
        num_classes: int,
        head_hidden: int | None = None,
        feature: str = "concat",
        feature_cfg: Mapping[str, Any] | None = None,
        decision: str = "late-mean",
        decision_cfg: Mapping[str, Any] | None = None,
        combine: str = "gate",
        **common: Any,
    ) -> None:
        super().__init__(dims, **common)
        dim, dropout = self.dim, self.dropout_p
        if combine not in ("gate", "mean"):
            raise ConfigError(f"hybrid combine must be 'gate' or 'mean', got {combine!r}")
        self.feature = _create_part(
            feature, "feature", dims, {"dim": dim, "dropout": dropout, **(feature_cfg or {})}
        )
        decision_defaults = {"num_classes": num_classes, "dim": dim, "dropout": dropout}
        self.decision = _create_part(
            decision,
            "decision",
            dims,
            {**decision_defaults, "head_hidden": head_hidden, **(decision_cfg or {})},
        )
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.feature.dim, num_classes)
        self.gate: nn.Linear | None = None
        if combine == "gate":
            self.gate = nn.Linear(self.feature.dim + len(self.modalities), 1)

    def fuse(self, features: Mapping[str, Encoded], present: torch.Tensor) -> FusionOutput:
        feat_out = self.feature(features, present)
        dec_out = self.decision(features, present)
        assert dec_out.logits is not None
        feat_lp = torch.log_softmax(self.classifier(feat_out.fused), dim=-1)  # (B, C)
        dec_lp = torch.log_softmax(dec_out.logits, dim=-1)
        if self.gate is None:
            g = feat_lp.new_full((feat_lp.shape[0], 1), 0.5)
        else:
            gate_in = torch.cat([feat_out.fused, present.to(feat_lp.dtype)], dim=1)
            g = torch.sigmoid(self.gate(gate_in))  # (B, 1)
        logits = g * feat_lp + (1 - g) * dec_lp
        return FusionOutput(
            fused=logits,
            logits=logits,
            weights=_mix_weights(feat_out.weights, dec_out.weights, g),
            modality_logits=dec_out.modality_logits,
        )


def _create_part(name: str, kind: str, dims: Mapping[str, int], cfg: Mapping[str, Any]) -> Fusion:
    """Build one part of a hybrid after checking that ``name`` is a fusion of ``kind``."""
    found = getattr(fusions.get(name), "kind", "feature")
    if found != kind:
        raise ConfigError(f"hybrid needs a {kind}-level fusion here; {name!r} is {found}")
    return create_fusion(name, dims, **cfg)


def _mix_weights(
    feature: torch.Tensor | None, decision: torch.Tensor | None, gate: torch.Tensor
) -> torch.Tensor | None:
    if feature is None:
        return decision
    if decision is None:
        return feature
    return gate * feature + (1 - gate) * decision


def modality_cross_entropy(
    output: FusionOutput, present: torch.Tensor, modalities: Sequence[str], targets: torch.Tensor
) -> torch.Tensor:
    """Auxiliary loss of a decision-level fusion: the cross-entropy of every modality head on the
    samples where its modality is present, averaged over those (sample, modality) pairs.

    ``modalities`` is the fusion's modality order (the columns of ``present``); ``targets`` are
    class indices (B,). Zero when nothing is present.
    """
    total = output.fused.new_zeros(())
    count = 0
    for i, m in enumerate(modalities):
        logits = (output.modality_logits or {}).get(m)
        if logits is None:
            continue
        losses = F.cross_entropy(logits, targets, reduction="none")  # (B,)
        total = total + torch.where(present[:, i], losses, torch.zeros_like(losses)).sum()
        count += int(present[:, i].sum())
    return total / max(count, 1)
