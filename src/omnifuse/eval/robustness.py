"""Robustness: accuracy with every subset of modalities missing, and under noisy inputs.

Missing modalities are simulated on cached features (:func:`omnifuse.eval.inference.restrict`).
Noise curves perturb the RAW inputs of one column and re-encode them with the same pretrained
encoder the features were cached with, so the model sees what a noisy camera or microphone would
give it. Perturbed features depend only on the data, the noise and the seed, never on the model:
a :class:`NoiseProbe` encodes them once and every model of a sweep is scored on the same ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from omnifuse.data.cache import CachedBatch
from omnifuse.encoders.base import Encoder
from omnifuse.eval.inference import (
    Batch,
    BatchTransform,
    FusionModelLike,
    model_columns,
    predict,
)
from omnifuse.eval.noise import Noise, sample_rng
from omnifuse.types import Encoded


def modality_subsets(columns: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``columns`` (2^M − 1), the full set first, then by size."""
    ordered = tuple(columns)
    return [
        subset
        for size in range(len(ordered), 0, -1)
        for subset in itertools.combinations(ordered, size)
    ]


@dataclass
class SubsetScore:
    """Scores with only ``present`` modalities available."""

    present: tuple[str, ...]
    accuracy: float
    true_class_probability: float

    @property
    def label(self) -> str:
        return "+".join(self.present)


def missing_modality_scores(
    model: FusionModelLike, batches: Sequence[CachedBatch]
) -> list[SubsetScore]:
    """Accuracy and mean true-class probability for every non-empty subset of the model's
    modalities (the others set absent)."""
    scores = []
    for subset in modality_subsets(model_columns(model)):
        predictions = predict(model, batches, subset)
        scores.append(
            SubsetScore(subset, predictions.accuracy(), predictions.true_class_probability())
        )
    return scores


def drop_in_accuracy(scores: Sequence[SubsetScore]) -> dict[str, float]:
    """For each modality, accuracy with all modalities minus accuracy without that one."""
    by_subset = {frozenset(s.present): s.accuracy for s in scores}
    full = max(by_subset, key=len)
    return {
        m: by_subset[full] - by_subset[full - {m}]
        for m in sorted(full)
        if len(full) > 1 and full - {m} in by_subset
    }


@dataclass
class NoiseCurve:
    """Accuracy of one model as one column is perturbed more and more."""

    column: str
    noise: str
    unit: str
    levels: list[float]
    accuracy: list[float]


@dataclass
class NoiseProbe:
    """Features of ``column`` perturbed by ``noise`` at each level: ``features[level][batch]``."""

    column: str
    noise: Noise
    levels: list[float]
    features: list[list[Encoded]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        batches: Sequence[CachedBatch],
        raws: Mapping[str, Any],
        column: str,
        encoder: Encoder,
        noise: Noise,
        *,
        levels: Sequence[float] | None = None,
        seed: int = 0,
        tokens_dtype: torch.dtype | None = torch.float16,
    ) -> NoiseProbe:
        """Perturb and encode the ``column`` inputs of ``batches`` at every level.

        ``raws`` maps a sample name to its raw ``column`` value. ``tokens_dtype`` rounds fresh
        token features as the cache stored them, so level 0 reproduces the cached inputs.
        """
        probe = cls(column, noise, list(levels if levels is not None else noise.levels))
        for level in probe.levels:
            probe.features.append(
                [
                    _encode_batch(batch, raws, column, encoder, noise, level, seed)
                    for batch in batches
                ]
            )
            if tokens_dtype is not None:
                probe.features[-1] = [
                    Encoded(e.tokens.to(tokens_dtype).float(), e.mask, e.pooled)
                    for e in probe.features[-1]
                ]
        return probe

    def curve(self, model: FusionModelLike, batches: Sequence[CachedBatch]) -> NoiseCurve:
        """Accuracy of ``model`` at each level (a model without the column scores flat)."""
        accuracy = [
            predict(model, batches, transform=self._swapper(level)).accuracy()
            for level in range(len(self.levels))
        ]
        return NoiseCurve(self.column, self.noise.name, self.noise.unit, self.levels, accuracy)

    def _swapper(self, level: int) -> BatchTransform:
        """A transform that puts this level's features in place of the clean column."""

        def swap(batch: Batch, index: int) -> Batch:
            if self.column not in batch.features:
                return batch
            features = dict(batch.features)
            features[self.column] = self.features[level][index]
            return Batch(features, batch.present, batch.labels)

        return swap


def _encode_batch(
    batch: CachedBatch,
    raws: Mapping[str, Any],
    column: str,
    encoder: Encoder,
    noise: Noise,
    level: float,
    seed: int,
) -> Encoded:
    """Perturbed features of one batch's column; samples without the column stay absent."""
    if column not in batch.columns:
        raise ValueError(f"batches have no column {column!r}")
    present = batch.present[:, batch.columns.index(column)]
    rows = [i for i, name in enumerate(batch.names) if bool(present[i]) and name in raws]
    cached = batch.features[column]
    if not rows:
        return cached
    inputs = [
        noise.apply(
            raws[batch.names[i]], level, sample_rng(seed, noise.name, level, batch.names[i])
        )
        for i in rows
    ]
    fresh = encoder.encode(inputs)
    size, length, dim = len(batch.names), int(fresh.tokens.shape[1]), int(fresh.tokens.shape[2])
    tokens = torch.zeros(size, length, dim)
    mask = torch.zeros(size, length, dtype=torch.bool)
    pooled = torch.zeros(size, dim)
    index = torch.tensor(rows)
    tokens[index], mask[index], pooled[index] = fresh.tokens, fresh.mask, fresh.pooled
    return Encoded(tokens, mask, pooled)
