"""Small models and cached-feature batches built in memory, shared by the evaluation tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from omnifuse.data.cache import CachedBatch
from omnifuse.fusion import FusionOutput, create_fusion
from omnifuse.types import Encoded


@dataclass
class Output:
    logits: torch.Tensor
    fusion: FusionOutput


class TinyModel(nn.Module):
    """A registered fusion plus a linear head: the shape of a real fusion model."""

    def __init__(self, fusion: str, dims: Mapping[str, int], classes: int, **cfg: object) -> None:
        super().__init__()
        self.fusion = create_fusion(fusion, dims, dim=16, **cfg)
        self.head = nn.Linear(16, classes)

    def forward(self, features: Mapping[str, Encoded], present: torch.Tensor) -> Output:
        out = self.fusion(features, present)
        return Output(self.head(out.fused), out)


class Modalities:
    """Just the ``modalities`` attribute a model's ``fusion`` exposes."""

    def __init__(self, modalities: Sequence[str]) -> None:
        self.modalities = tuple(modalities)


class OracleModel(nn.Module):
    """``logits = scale · onehot(label)`` from modality ``a`` (its pooled vector is the one-hot
    label) when present, zeros otherwise; modality ``b`` is ignored. Its scores are known in
    closed form."""

    def __init__(self, scale: float = 4.0) -> None:
        super().__init__()
        self.fusion = Modalities(("a", "b"))
        self.scale = scale

    def forward(self, features: Mapping[str, Encoded], present: torch.Tensor) -> Output:
        a = features["a"].pooled * present[:, :1].float()
        logits = self.scale * a
        weights = torch.tensor([[1.0, 0.0]]).expand(a.shape[0], 2)
        return Output(logits, FusionOutput(fused=logits, weights=weights))


def encoded(pooled: torch.Tensor, tokens: int = 3) -> Encoded:
    size, dim = pooled.shape
    seq = pooled.unsqueeze(1).expand(size, tokens, dim).clone()
    return Encoded(seq, torch.ones(size, tokens, dtype=torch.bool), pooled)


def make_batches(
    labels: torch.Tensor, features: Mapping[str, torch.Tensor], batch_size: int = 16
) -> list[CachedBatch]:
    """Cached-style batches of the given pooled features (every modality present)."""
    columns = tuple(sorted(features))
    batches = []
    for start in range(0, len(labels), batch_size):
        part = slice(start, start + batch_size)
        size = len(labels[part])
        batches.append(
            CachedBatch(
                features={c: encoded(features[c][part]) for c in columns},
                present=torch.ones(size, len(columns), dtype=torch.bool),
                columns=columns,
                labels=labels[part],
                names=[f"s{i}" for i in range(start, start + size)],
            )
        )
    return batches


def oracle_batches(n: int = 40, classes: int = 4, seed: int = 0) -> list[CachedBatch]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    onehot = nn.functional.one_hot(labels, classes).float()
    noise = torch.randn(n, 5, generator=g)
    return make_batches(labels, {"a": onehot, "b": noise})
