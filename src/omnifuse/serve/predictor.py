"""A fusion model behind the API: per-request preprocessing, batched forward, explanations.

Samples from concurrent requests may hold different subsets of the model's columns; they are
batched together (absent columns are simply absent for their rows). Each prediction comes with
the fusion's own modality weights (when it has them) and exact Shapley contributions of the
present modalities to the predicted output, computed from 2^M forward passes of the fusion and
head on features encoded once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from omnifuse.eval.explain import shapley_values
from omnifuse.models import FusionModel, RawDataset
from omnifuse.models.raw import RawSample

MAX_EXPLAINED_MODALITIES = 6
"""2^6 = 64 fusion passes per batch at most; beyond that contributions are left out."""


@dataclass
class Prediction:
    """One sample's outputs: ``top`` (label, score) pairs best first, the modality ``weights``
    of the fusion (if any), ``contributions`` (Shapley values over the present modalities of the
    predicted output, if computed) and the columns that were ``present``."""

    top: list[tuple[str, float]]
    present: list[str]
    weights: dict[str, float] | None
    contributions: dict[str, float] | None


class Predictor:
    """Wraps a loaded :class:`FusionModel` for serving."""

    def __init__(self, name: str, model: FusionModel, *, explain: bool = True) -> None:
        self.name = name
        self.model = model.eval()
        self.columns = tuple(model.modalities)
        self._data = RawDataset([], model, names=[], errors="raise")
        self.kinds = {c: model.encoder(c).modality for c in self.columns}
        self.explain = explain and len(self.columns) <= MAX_EXPLAINED_MODALITIES

    @property
    def task(self) -> str:
        return self.model.config.task

    @property
    def classes(self) -> list[str]:
        return list(self.model.config.classes)

    def prepare(self, sample: Mapping[str, Any]) -> RawSample:
        """Decoded inputs by column → the encoders' preprocessed inputs (CPU work)."""
        inputs = {c: self.model.encoder(c).preprocess(raw) for c, raw in sample.items()}
        return RawSample(inputs, name="request")

    def run(self, items: list[tuple[RawSample, int]]) -> list[Prediction]:
        """Predict a batch of prepared samples, each with how many top outputs it wants."""
        batch = self._data.collate([sample for sample, _ in items])
        most = max(k for _, k in items)
        with torch.inference_mode():
            features, present = self.model.inputs_of(batch)
            out = self.model(features, present)
            tops = self.model.task.top(out.logits.float().cpu(), most)
            weights = out.fusion.weights
            contributions = (
                self._contributions(features, present, out.logits) if self.explain else None
            )
        predictions = []
        for i, top in enumerate(tops):
            row_present = present[i].cpu().tolist()
            names = [c for c, p in zip(self.columns, row_present, strict=True) if p]
            predictions.append(
                Prediction(
                    top=[(str(label), float(score)) for label, score in top[: items[i][1]]],
                    present=names,
                    weights=None if weights is None else self._by_column(weights[i], names),
                    contributions=None if contributions is None else contributions[i],
                )
            )
        return predictions

    def _by_column(self, row: torch.Tensor, present: list[str]) -> dict[str, float]:
        values = row.float().cpu().tolist()
        return {c: float(v) for c, v in zip(self.columns, values, strict=True) if c in present}

    def _contributions(
        self, features: Mapping[str, Any], present: torch.Tensor, logits: torch.Tensor
    ) -> list[dict[str, float]]:
        """Per sample, Shapley values of its present columns on the predicted output: the
        probability of the predicted class (the first output for regression)."""
        task = self.model.task
        full = task.predict(logits.float())
        full = full.reshape(full.shape[0], -1)
        target = full.argmax(dim=-1) if task.uses_classes else torch.zeros_like(full[:, 0]).long()
        rows = torch.arange(full.shape[0], device=full.device)
        fallback = 1.0 / max(1, full.shape[-1]) if task.uses_classes else 0.0
        values: dict[frozenset[str], torch.Tensor] = {}
        m = len(self.columns)
        for code in range(1 << m):
            coalition = frozenset(c for j, c in enumerate(self.columns) if code >> j & 1)
            keep = torch.tensor(
                [c in coalition for c in self.columns], dtype=torch.bool, device=present.device
            )
            out = self.model(features, present & keep)
            predicted = task.predict(out.logits.float()).reshape(full.shape)
            value = predicted[rows, target]
            values[coalition] = torch.where(
                torch.isfinite(value), value, torch.full_like(value, fallback)
            )
        result = []
        for i in range(full.shape[0]):
            players = [c for j, c in enumerate(self.columns) if bool(present[i, j])]
            sample_values = {
                frozenset(s & set(players)): float(v[i])
                for s, v in values.items()
                if s <= set(players)
            }
            shares = shapley_values(sample_values, players) if players else {}
            result.append({c: _finite(v) for c, v in shares.items()})
        return result


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
