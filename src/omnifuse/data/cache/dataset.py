"""Training on cached features: a ``Dataset`` over a manifest whose columns were encoded.

Each sample yields the stored features of its columns, with a presence flag per column so a
fusion model sees which modalities a sample lacks (absent from the manifest, or an item that
failed to encode). Nothing here runs an encoder or decodes media: keys of media paths come from
the cache's source records, so training works even after the media files are gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from omnifuse.data.cache.encode import sample_name
from omnifuse.data.cache.reader import FeatureCache
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.errors import ConfigError, InputError
from omnifuse.types import Encoded, pad_tokens


@dataclass
class CachedSample:
    """One sample: ``features[column] = (tokens (T, D), pooled (D,))`` for every dataset column
    (zeros where ``present`` is False), the label as a tensor (or None) and the sample's name."""

    features: dict[str, tuple[torch.Tensor, torch.Tensor]]
    present: dict[str, bool]
    label: torch.Tensor | None
    name: str


@dataclass
class CachedBatch:
    """A collated batch: what fusion takes (``features`` + ``present`` (B, M), columns in the
    order of ``columns``), the labels (B,) and the sample names."""

    features: dict[str, Encoded]
    present: torch.Tensor
    columns: tuple[str, ...]
    labels: torch.Tensor | None
    names: list[str]


class CachedFeatureDataset(Dataset[CachedSample]):
    """Samples of ``manifest`` (optionally one ``split``) with their cached ``columns``.

    String labels become class indices over ``classes`` (by default the sorted distinct labels of
    these samples; pass the training set's ``classes`` to val/test sets); numeric labels stay
    numbers. Samples without any cached column are left out and counted in ``dropped``. Where the
    media files are gone, pass a :class:`Manifest` loaded while they existed: ``load_manifest``
    skips lines whose files are missing.
    """

    def __init__(
        self,
        cache: FeatureCache | str | Path,
        manifest: Manifest | str | Path,
        columns: Sequence[str] | None = None,
        *,
        label_column: str | None = None,
        split: str | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
        self.manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        modalities = self.manifest.schema.modalities
        self.columns = tuple(columns or [c for c in self.cache.columns if c in modalities])
        if not self.columns:
            raise ConfigError("no cached column of this manifest to read")
        self.dims = {column: self.cache.info(column).dim for column in self.columns}
        self.label_column = label_column
        self.rows: list[tuple[str, dict[str, str], Any]] = []
        self.dropped = 0
        split_column = self.manifest.schema.split
        for index, sample in enumerate(self.manifest.samples):
            if split is not None and split_column is not None and sample.get(split_column) != split:
                continue
            self._add(sample, sample_name(sample, self.manifest, index))
        self.classes = self._classes(classes)

    def _add(self, sample: dict[str, Any], name: str) -> None:
        keys: dict[str, str] = {}
        for column in self.columns:
            if column not in sample:
                continue
            try:
                key = self.cache.key_for(column, sample[column])
            except InputError:
                continue
            if self.cache.has(column, key):
                keys[column] = key
        if not keys:
            self.dropped += 1
            return
        label = sample.get(self.label_column) if self.label_column else None
        self.rows.append((name, keys, label))

    def _classes(self, classes: Sequence[str] | None) -> list[str] | None:
        if self.label_column is None:
            return None
        if classes is not None:
            return list(classes)
        labels = [label for _, _, label in self.rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
            return None
        return sorted({str(v) for v in labels})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> CachedSample:
        name, keys, label = self.rows[index]
        features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        present: dict[str, bool] = {}
        for column in self.columns:
            key = keys.get(column)
            present[column] = key is not None
            if key is None:
                dim = self.dims[column]
                features[column] = (torch.zeros(1, dim), torch.zeros(dim))
            else:
                store = self.cache.store(column)
                features[column] = (store.read_tokens(key), store.read_pooled(key))
        return CachedSample(features, present, self._label(label), name)

    def _label(self, value: Any) -> torch.Tensor | None:
        if self.label_column is None:
            return None
        if self.classes is None:
            return torch.tensor(float(value))
        try:
            return torch.tensor(self.classes.index(str(value)))
        except ValueError:
            raise ConfigError(
                f"label {value!r} of column {self.label_column!r} is not one of the classes"
            ) from None


def collate_cached(samples: Sequence[CachedSample]) -> CachedBatch:
    """Pad each column's tokens to the batch's longest (mask True = real token) and stack the
    presence flags into (B, M); an absent modality has an all-False mask and zero vectors."""
    if not samples:
        raise ValueError("collate_cached needs at least one sample")
    columns = tuple(samples[0].features)
    features: dict[str, Encoded] = {}
    for column in columns:
        tokens, mask = pad_tokens([s.features[column][0].to(torch.float32) for s in samples])
        present = torch.tensor([s.present[column] for s in samples])
        mask &= present.unsqueeze(1)
        pooled = torch.stack([s.features[column][1].to(torch.float32) for s in samples])
        features[column] = Encoded(tokens, mask, pooled)
    present = torch.tensor([[s.present[c] for c in columns] for s in samples], dtype=torch.bool)
    labels = None
    if samples[0].label is not None:
        labels = torch.stack([s.label for s in samples if s.label is not None])
    return CachedBatch(features, present, columns, labels, [s.name for s in samples])
