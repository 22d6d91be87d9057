"""Running a model over a dataset: batching, targets from manifest rows, predictions, metrics.

Targets come from the manifest rows themselves (the model's ``target`` column, encoded by its
task with its own classes), looked up by sample name. That keeps every dataset — cached features,
raw samples, subsets of either — scored against the same class order as the model, whatever
class order a dataset derived on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from omnifuse.data.cache import CachedFeatureDataset, collate_cached
from omnifuse.data.cache.encode import sample_name
from omnifuse.errors import ConfigError
from omnifuse.models.fusion_model import Batch, FusionModel
from omnifuse.models.raw import RawDataset
from omnifuse.tasks import Task
from omnifuse.types import Predictions


def base_dataset(data: Dataset[Any]) -> Dataset[Any]:
    """The dataset under any ``Subset`` wrappers."""
    while isinstance(data, Subset):
        data = data.dataset
    return data


def collate_fn(data: Dataset[Any]) -> Callable[[Sequence[Any]], Batch]:
    """How to batch ``data``: raw datasets per column, cached ones with ``collate_cached``."""
    base = base_dataset(data)
    return base.collate if isinstance(base, RawDataset) else collate_cached


def dataset_records(data: Dataset[Any]) -> dict[str, Mapping[str, Any]] | None:
    """Sample name → manifest row, for datasets that come from a manifest."""
    base = base_dataset(data)
    if isinstance(base, RawDataset):
        return base.records
    if isinstance(base, CachedFeatureDataset):
        manifest = base.manifest
        return {sample_name(s, manifest, i): s for i, s in enumerate(manifest.samples)}
    return None


class Targets:
    """Target tensors of a dataset's samples by name, encoded once each by the task and kept in
    one table, so a batch's targets are a single indexing operation."""

    def __init__(self, task: Task, target: str, records: Mapping[str, Mapping[str, Any]] | None):
        self.task = task
        self.target = target
        self.records = records
        self._index: dict[str, int] = {}
        self._encoded: list[torch.Tensor] = []
        self._table: torch.Tensor | None = None

    def of(self, batch: Batch) -> torch.Tensor:
        """Targets of a batch's samples (falling back on the batch's own labels)."""
        if self.records is None:
            if batch.labels is None:
                raise ConfigError("the dataset has neither manifest rows nor labels to train on")
            return batch.labels
        rows = [self._row(name) for name in batch.names]
        if self._table is None or self._table.shape[0] != len(self._encoded):
            self._table = torch.stack(self._encoded)
        return self._table[torch.tensor(rows)]

    def one(self, name: str) -> torch.Tensor:
        """The target of one sample, by name."""
        return self._encoded[self._row(name)]

    def _row(self, name: str) -> int:
        row = self._index.get(name)
        if row is None:
            record = (self.records or {}).get(name)
            if record is None or record.get(self.target) in (None, ""):
                raise ConfigError(f"sample {name!r} has no {self.target!r} label")
            self._encoded.append(self.task.encode_target(record[self.target]))
            row = self._index[name] = len(self._encoded) - 1
        return row

    def rows(self, names: Sequence[str]) -> list[Mapping[str, Any]] | None:
        if self.records is None:
            return None
        return [self.records.get(n, {}) for n in names]


def loader(
    data: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """A ``DataLoader`` with the right collate function; shuffled by a generator of ``seed``."""
    generator = None
    if shuffle:
        generator = torch.Generator()
        generator.manual_seed(seed)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=collate_fn(data),
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


def predict_dataset(
    model: FusionModel,
    data: Dataset[Any],
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    bf16: bool = False,
) -> Predictions:
    """Run ``model`` (in eval mode, no gradients) over ``data``."""
    device = device or model.device
    targets = Targets(model.task, model.config.target, dataset_records(data))
    logits, labels, names, weights = [], [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in loader(data, batch_size):
                features, present = model.inputs_of(batch, device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    out = model(features, present)
                logits.append(out.logits.float().cpu())
                labels.append(targets.of(batch))
                names += batch.names
                if out.fusion.weights is not None:
                    weights.append(out.fusion.weights.float().cpu())
    finally:
        model.train(was_training)
    if not logits:
        raise ConfigError("nothing to evaluate: the dataset is empty")
    return Predictions(
        torch.cat(logits),
        torch.cat(labels),
        torch.cat(weights) if len(weights) == len(logits) else None,
        names=names,
        rows=targets.rows(names),
    )


def evaluate(
    model: FusionModel,
    data: Dataset[Any],
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    bf16: bool = False,
) -> dict[str, Any]:
    """The task's metrics of ``model`` on ``data`` (accuracy, macro-F1, loss, ...)."""
    predictions = predict_dataset(model, data, batch_size=batch_size, device=device, bf16=bf16)
    return model.task.metrics(predictions.logits, predictions.labels, predictions.rows)
