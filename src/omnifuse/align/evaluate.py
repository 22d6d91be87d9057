"""Retrieval in every direction an aligned model allows, on cached features or raw inputs.

Each modality's items of a split are embedded once; for every ordered pair of modalities the
cosine scores (Q, G) are ranked and scored by :func:`~omnifuse.eval.retrieval.retrieval_report`.
Relevance is group equality (by default exact caption equality: several scenes may share one
caption, and each of them is a correct answer), so the chance levels in the report account for
the duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from omnifuse.align.data import SplitData
from omnifuse.align.model import AlignedModel
from omnifuse.eval.retrieval import DEFAULT_KS, relevance_from_groups, retrieval_report
from omnifuse.progress import track

ARROW = "→"


def direction(query: str, gallery: str) -> str:
    return f"{query}{ARROW}{gallery}"


def split_embeddings(
    model: AlignedModel,
    split: SplitData,
    *,
    modalities: Sequence[str] | None = None,
    batch_size: int = 512,
) -> dict[str, np.ndarray]:
    """The model's modalities (or those given) embedded from the split's cached features."""
    out: dict[str, np.ndarray] = {}
    for modality in modalities or model.modalities:
        features = split.features.get(model.specs[modality].column)
        if features is None:
            continue
        parts = []
        for start in range(0, len(split), batch_size):
            index = range(start, min(start + batch_size, len(split)))
            pooled, tokens, mask = features.batch(index)
            parts.append(model.embed_features(modality, pooled, tokens, mask))
        out[modality] = np.concatenate(parts) if parts else np.zeros((0, model.dim), np.float32)
    return out


def retrieval_metrics(
    embeddings: Mapping[str, np.ndarray],
    groups: Sequence[Any],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    directions: Sequence[tuple[str, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{"text→image": report, ...}`` for every ordered pair (or the given ``directions``)."""
    modalities = list(embeddings)
    pairs = directions or [(q, g) for q in modalities for g in modalities if q != g]
    relevant = relevance_from_groups(list(groups), list(groups))
    out: dict[str, dict[str, Any]] = {}
    for query, gallery in pairs:
        scores = embeddings[query] @ embeddings[gallery].T
        out[direction(query, gallery)] = retrieval_report(scores, relevant, ks)
    return out


def evaluate_split(
    model: AlignedModel, split: SplitData, *, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, dict[str, Any]]:
    """Retrieval metrics of a split read from the feature cache."""
    return retrieval_metrics(split_embeddings(model, split), split.group_keys, ks=ks)


def embed_samples(
    model: AlignedModel, samples: Sequence[Mapping[str, Any]], *, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Each modality embedded from the raw values of its training column in ``samples``."""
    out: dict[str, np.ndarray] = {}
    for modality, spec in model.specs.items():
        raws = [sample[spec.column] for sample in samples]
        parts = [
            model.embed(modality, raws[i : i + batch_size], batch_size=batch_size)
            for i in track(range(0, len(raws), batch_size), f"embedding {modality}")
        ]
        out[modality] = np.concatenate(parts) if parts else np.zeros((0, model.dim), np.float32)
    return out
