"""Raw manifest samples as model inputs: decoded and preprocessed per column, encoded per batch.

:class:`RawDataset` preprocesses each sample's columns with the model's encoders (optionally
after an augmentation of the raw input), :meth:`RawDataset.collate` batches them per column, and
:meth:`~omnifuse.models.FusionModel.inputs_of` runs the encoders on the batch — inside the
model's forward pass, so trainable encoders learn with the rest of the model. A column a sample
lacks, or whose input cannot be decoded, is absent (``present`` False) for that sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from omnifuse.data.cache.encode import sample_name
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.encoders.base import Encoder
from omnifuse.errors import ConfigError, InputError
from omnifuse.types import Encoded


class ColumnEncoders(Protocol):
    """Where a raw dataset gets its columns and each column's encoder; a
    :class:`~omnifuse.models.FusionModel` is one. The dataset needs the encoders, not a model."""

    @property
    def modalities(self) -> tuple[str, ...]:
        """The columns, in presence-mask order."""
        ...

    def ensure_encoders(self) -> None:
        """Build any encoder not built yet."""
        ...

    def encoder(self, column: str) -> Encoder: ...


Augment = Callable[[str, Any, np.random.Generator], Any]
"""``(kind, raw input, rng) → raw input``: a random change applied before preprocessing."""


@dataclass
class RawSample:
    """One sample's preprocessed inputs (present columns only) and its name."""

    inputs: dict[str, Any]
    name: str


@dataclass
class RawBatch:
    """A batch of raw samples: per column, the encoder's collated batch of the samples that have
    it and their row numbers (P,); ``present`` (B, M) in ``columns`` order."""

    inputs: dict[str, tuple[Any, torch.Tensor]]
    present: torch.Tensor
    columns: tuple[str, ...]
    names: list[str]
    labels: torch.Tensor | None = None


@dataclass
class SkippedInput:
    sample: str
    column: str
    reason: str


@dataclass(eq=False)
class RawDataset(Dataset[RawSample]):
    """``samples`` (manifest rows, media paths absolute) for the columns of ``encoders``.

    ``augment`` changes raw inputs at random (training only); its generator is seeded by
    ``(seed, epoch, index)``, so an epoch's augmentations do not depend on the order samples are
    read in or on how training was resumed (call :meth:`set_epoch`). With ``errors="skip"`` an
    input that fails to decode is left out of its sample and listed in ``skipped``; with
    ``"raise"`` its :class:`~omnifuse.errors.InputError` propagates.
    """

    samples: Sequence[Mapping[str, Any]] = field(repr=False)
    encoders: ColumnEncoders = field(repr=False)
    names: list[str] | None = field(default=None, repr=False)
    augment: Augment | None = None
    seed: int = 0
    errors: str = "skip"
    epoch: int = 0
    skipped: list[SkippedInput] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.errors not in ("skip", "raise"):
            raise ConfigError(f"errors must be 'skip' or 'raise', got {self.errors!r}")
        self.encoders.ensure_encoders()
        self.columns = tuple(self.encoders.modalities)
        self.kinds = {c: self.encoders.encoder(c).modality for c in self.columns}
        if self.names is None:
            self.names = [str(s.get("id") or f"#{i + 1}") for i, s in enumerate(self.samples)]
        if len(self.names) != len(self.samples):
            raise ConfigError("names and samples differ in length")

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest | str | Path,
        encoders: ColumnEncoders,
        *,
        split: str | None = None,
        **options: Any,
    ) -> RawDataset:
        """The samples of one split (all when ``split`` is None), named as the cache names them."""
        loaded = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        split_column = loaded.schema.split
        chosen = [
            (i, s)
            for i, s in enumerate(loaded.samples)
            if split is None or split_column is None or s.get(split_column) == split
        ]
        names = [sample_name(s, loaded, i) for i, s in chosen]
        return cls([s for _, s in chosen], encoders, names=names, **options)

    @property
    def records(self) -> dict[str, Mapping[str, Any]]:
        """Sample name → its manifest row (for targets and grouped metrics)."""
        return dict(zip(self.names or [], self.samples, strict=True))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> RawSample:
        sample = self.samples[index]
        name = (self.names or [])[index]
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment else None
        inputs: dict[str, Any] = {}
        for column in self.columns:
            raw = sample.get(column)
            if raw is None or raw == "":
                continue
            try:
                if self.augment is not None and rng is not None:
                    raw = self.augment(self.kinds[column], raw, rng)
                inputs[column] = self.encoders.encoder(column).preprocess(raw)
            except InputError as err:
                if self.errors == "raise":
                    raise
                self.skipped.append(SkippedInput(name, column, str(err)))
        return RawSample(inputs, name)

    def collate(self, samples: Sequence[RawSample]) -> RawBatch:
        """Collate each column over the samples that have it."""
        inputs: dict[str, tuple[Any, torch.Tensor]] = {}
        for column in self.columns:
            rows = [i for i, s in enumerate(samples) if column in s.inputs]
            if rows:
                items = [samples[i].inputs[column] for i in rows]
                collated = self.encoders.encoder(column).collate(items)
                inputs[column] = (collated, torch.tensor(rows, dtype=torch.long))
        present = torch.tensor(
            [[column in s.inputs for column in self.columns] for s in samples], dtype=torch.bool
        )
        return RawBatch(inputs, present, self.columns, [s.name for s in samples])


def scatter_rows(encoded: Encoded, rows: torch.Tensor, batch: int) -> Encoded:
    """Features of ``rows`` of a batch → the whole batch, zeros and an all-False mask elsewhere."""
    tokens = encoded.tokens.new_zeros((batch, *encoded.tokens.shape[1:]))
    mask = encoded.mask.new_zeros((batch, encoded.mask.shape[1]))
    pooled = encoded.pooled.new_zeros((batch, encoded.pooled.shape[1]))
    return Encoded(
        tokens.index_copy(0, rows, encoded.tokens),
        mask.index_copy(0, rows, encoded.mask),
        pooled.index_copy(0, rows, encoded.pooled),
    )
