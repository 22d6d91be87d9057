"""Running a fusion model over prepared batches, with chosen modalities switched off.

Every evaluation here (missing modalities, ablation, Shapley values, noise curves) asks the same
question many times: what does the model predict when only some modalities are present? The
batches are collated once (:func:`prepare_batches`) and reused; :func:`restrict` turns a batch
into one where the other modalities look exactly as ``collate_cached`` makes an absent modality
look (``present`` False, zero vectors, an all-False token mask), so a fusion that ignored
``present`` could not see them either.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from omnifuse.data.cache import CachedBatch, collate_cached
from omnifuse.types import Encoded, Predictions


class ModelOutputLike(Protocol):
    """What a model returns: class ``logits`` (B, C) and the fusion's output."""

    logits: torch.Tensor
    fusion: Any


FusionModelLike = nn.Module
"""A model evaluated here: ``model(features, present)`` returns a :class:`ModelOutputLike`, and
``model.fusion.modalities`` are its columns in presence-mask order (as
:class:`omnifuse.models.FusionModel`)."""


@dataclass
class Batch:
    """Model inputs for the model's own columns (presence in the model's column order)."""

    features: dict[str, Encoded]
    present: torch.Tensor
    labels: torch.Tensor


def model_columns(model: FusionModelLike) -> tuple[str, ...]:
    """The model's modality columns in the order of its presence mask."""
    return tuple(model.fusion.modalities)  # type: ignore[union-attr,arg-type]


def model_device(model: FusionModelLike) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def to_device(batch: Batch, device: torch.device) -> Batch:
    if device.type == "cpu":
        return batch
    features = {c: e.to(device) for c, e in batch.features.items()}
    return Batch(features, batch.present.to(device), batch.labels.to(device))


def prepare_batches(
    data: Dataset[Any] | Iterable[CachedBatch], *, batch_size: int = 256
) -> list[CachedBatch]:
    """Collate a cached-feature dataset once, so repeated evaluations skip reading and padding."""
    if isinstance(data, Dataset):
        loader: Iterable[CachedBatch] = DataLoader(
            data, batch_size=batch_size, shuffle=False, collate_fn=collate_cached
        )
        return list(loader)
    return list(data)


def absent_like(encoded: Encoded) -> Encoded:
    """What a fully absent column looks like after collation: zeros and an all-False mask."""
    return Encoded(
        torch.zeros_like(encoded.tokens),
        torch.zeros_like(encoded.mask, dtype=torch.bool),
        torch.zeros_like(encoded.pooled),
    )


def restrict(
    batch: CachedBatch, columns: Sequence[str], keep: Collection[str] | None = None
) -> Batch:
    """The inputs of a model over ``columns`` with only ``keep`` (default all) present.

    Columns outside ``keep`` get ``present`` False and absent-looking features; a column of the
    model that the batch lacks is absent too.
    """
    if batch.labels is None:
        raise ValueError("evaluation needs labelled batches")
    keep = set(columns) if keep is None else set(keep)
    features: dict[str, Encoded] = {}
    flags = []
    size = int(batch.present.shape[0])
    for column in columns:
        if column not in batch.columns:
            flags.append(torch.zeros(size, dtype=torch.bool))
            continue
        flag = batch.present[:, batch.columns.index(column)]
        encoded = batch.features[column]
        if column in keep:
            features[column] = encoded
            flags.append(flag)
        else:
            features[column] = absent_like(encoded)
            flags.append(torch.zeros_like(flag))
    return Batch(features, torch.stack(flags, dim=1), batch.labels)


BatchTransform = Callable[[Batch, int], Batch]
"""Changes a batch before the model sees it (e.g. swaps in perturbed features); gets its index."""


@torch.inference_mode()
def predict(
    model: FusionModelLike,
    batches: Sequence[CachedBatch],
    keep: Collection[str] | None = None,
    *,
    transform: BatchTransform | None = None,
) -> Predictions:
    """Run ``model`` over ``batches`` with only the ``keep`` modalities present."""
    model.eval()
    columns = model_columns(model)
    device = model_device(model)
    logits, labels, weights, present = [], [], [], []
    for index, cached in enumerate(batches):
        batch = restrict(cached, columns, keep)
        if transform is not None:
            batch = transform(batch, index)
        batch = to_device(batch, device)
        out: ModelOutputLike = model(batch.features, batch.present)
        logits.append(out.logits.detach().float().cpu())
        labels.append(batch.labels.cpu())
        present.append(batch.present.cpu())
        w = getattr(out.fusion, "weights", None)
        weights.append(None if w is None else w.detach().float().cpu())
    all_weights = None if any(w is None for w in weights) else torch.cat(weights)  # type: ignore[arg-type]
    return Predictions(torch.cat(logits), torch.cat(labels), all_weights, torch.cat(present))
