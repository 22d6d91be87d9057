"""Fill an index from a manifest or from precomputed vector files.

From a manifest, every modality cell of every sample becomes one item. An item's id is
``<sample id>:<column>`` (the sample id from the manifest's id column, else
``<manifest stem>-<position>``), its vector the embedder's output for the cell, and its metadata
``modality``, ``column``, ``source`` (the text itself or the media path), ``sample``, ``split``
and ``label`` (the first label column; every label column also under its own name). Items the
embedder rejects are skipped and reported, never fatal; each batch is durable once added.
With an engine that runs elsewhere (Ray), the batches are embedded by its workers, each loading
the model once, and this process adds the vectors in batch order, as it would have itself.

From vector files, a float ``.npy`` of ``[N, D]`` gives the vectors, a text file one id per line,
and an optional JSON-lines file one metadata object per id.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.engines import Engine
from omnifuse.errors import ConfigError, InputError, InputNotFoundError, InvalidValueError
from omnifuse.index.base import VectorIndex
from omnifuse.progress import track


class Embedder(Protocol):
    """What ingest needs of a model: ``omnifuse.align.AlignedModel`` is one."""

    @property
    def modalities(self) -> tuple[str, ...]: ...

    @property
    def dim(self) -> int: ...

    def embed(self, modality: str, raws: Sequence[Any], *, batch_size: int = 32) -> np.ndarray: ...


@dataclass(frozen=True)
class Item:
    id: str
    modality: str
    raw: Any
    metadata: dict[str, Any]


@dataclass(frozen=True)
class SkippedItem:
    id: str
    error: str
    reason: str


@dataclass
class IngestReport:
    added: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)
    bad_lines: int = 0
    seconds: float = 0.0

    @property
    def items_per_second(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0


def manifest_items(
    manifest: Manifest, modalities: Sequence[str], columns: Sequence[str] | None = None
) -> list[Item]:
    """The items of ``manifest`` for the columns whose kind the embedder handles."""
    kinds = manifest.schema.modalities
    chosen = list(columns) if columns else [c for c, k in kinds.items() if k in modalities]
    for column in chosen:
        if column not in kinds:
            raise ConfigError(f"{column!r} is not a modality column of the manifest ({kinds})")
        if kinds[column] not in modalities:
            raise ConfigError(
                f"column {column!r} holds {kinds[column]}; the model embeds {list(modalities)}"
            )
    if not chosen:
        raise ConfigError(f"no manifest column holds a modality the model embeds {modalities}")
    items = []
    for position, sample in enumerate(manifest.samples):
        sample_id = _sample_id(manifest, sample, position)
        base = _sample_metadata(manifest, sample, sample_id)
        for column in chosen:
            value = sample.get(column)
            if value is None or value == "":
                continue
            meta = {"modality": kinds[column], "column": column, "source": str(value), **base}
            items.append(Item(f"{sample_id}:{column}", kinds[column], value, meta))
    return items


def _sample_id(manifest: Manifest, sample: dict[str, Any], position: int) -> str:
    column = manifest.schema.id
    if column and sample.get(column) not in (None, ""):
        return str(sample[column])
    return f"{manifest.path.stem}-{position}"


def _sample_metadata(manifest: Manifest, sample: dict[str, Any], sample_id: str) -> dict[str, Any]:
    schema = manifest.schema
    meta: dict[str, Any] = {"sample": sample_id}
    if schema.split and sample.get(schema.split) is not None:
        meta["split"] = sample[schema.split]
    for position, column in enumerate(schema.labels):
        if column in sample:
            meta[column] = sample[column]
            if position == 0:
                meta["label"] = sample[column]
    return meta


def _batches(items: list[Item], size: int) -> Iterator[list[Item]]:
    by_modality: dict[str, list[Item]] = {}
    for item in items:
        by_modality.setdefault(item.modality, []).append(item)
    for group in by_modality.values():
        for start in range(0, len(group), size):
            yield group[start : start + size]


def embed_batch(
    embedder: Embedder, batch: list[Item], batch_size: int
) -> tuple[list[Item], np.ndarray, list[SkippedItem]]:
    """Embed one batch of one modality; if it fails, embed item by item to skip only the bad."""
    modality = batch[0].modality
    try:
        vectors = embedder.embed(modality, [i.raw for i in batch], batch_size=batch_size)
        return batch, vectors, []
    except InputError:
        pass
    kept, rows, skipped = [], [], []
    for item in batch:
        try:
            rows.append(embedder.embed(modality, [item.raw], batch_size=1))
            kept.append(item)
        except InputError as err:
            skipped.append(SkippedItem(item.id, type(err).__name__, err.reason))
    vectors = np.concatenate(rows) if rows else np.zeros((0, embedder.dim), np.float32)
    return kept, vectors, skipped


EmbeddedBatch = tuple[list[Item], np.ndarray, list[SkippedItem]]


@dataclass(frozen=True)
class EmbedWorker:
    """A worker's recipe: load the embedder once (``load`` must pickle), embed batches."""

    load: Callable[[], Embedder]
    batch_size: int

    def __call__(self) -> Callable[[list[Item]], EmbeddedBatch]:
        embedder = self.load()

        def run(batch: list[Item]) -> EmbeddedBatch:
            return embed_batch(embedder, batch, self.batch_size)

        return run


def ingest_manifest(
    index: VectorIndex,
    manifest_path: Path | str,
    embedder: Embedder,
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = 32,
    engine: Engine | None = None,
    load_embedder: Callable[[], Embedder] | None = None,
) -> IngestReport:
    """Embed the manifest's items and add them to ``index`` batch by batch (see module doc).
    ``engine`` embeds the batches (default: this process); one that runs elsewhere needs
    ``load_embedder``, a picklable loader of the same model, to build it on each worker."""
    if embedder.dim != index.dim:
        raise ConfigError(
            f"the model embeds in {embedder.dim} dimensions, the index holds {index.dim}"
        )
    start = time.perf_counter()
    manifest = load_manifest(manifest_path)
    items = manifest_items(manifest, embedder.modalities, columns)
    report = IngestReport(bad_lines=manifest.skipped_lines)
    batches = list(_batches(items, batch_size))
    if engine is None or engine.in_process:
        results: Generator[EmbeddedBatch, None, None] = (
            embed_batch(embedder, b, batch_size) for b in batches
        )
    elif load_embedder is None:
        raise ConfigError(f"the {engine.name} engine needs a loader of the model for its workers")
    else:
        results = engine.map(EmbedWorker(load_embedder, batch_size), batches)
    label = f"indexing {len(items)} items"
    with contextlib.closing(results):
        for kept, vectors, skipped in track(results, label, total=len(batches)):
            report.skipped.extend(skipped)
            if kept:
                index.add([i.id for i in kept], vectors, [i.metadata for i in kept])
                report.added += len(kept)
    report.seconds = time.perf_counter() - start
    return report


VECTOR_BATCH = 1024
"""Fewest vectors per ``add`` when ingesting vector files: they need no embedding, so large
batches only save round trips."""


def read_vector_files(
    vectors: Path, ids: Path, metadata: Path | None = None
) -> tuple[list[str], np.ndarray, list[dict[str, Any]] | None]:
    """The ids, vectors and metadata rows of vector files, checked to have one row per id."""
    for path in (vectors, ids, metadata):
        if path is not None and not path.is_file():
            raise InputNotFoundError("no such file", source=path)
    try:
        array = np.load(vectors, allow_pickle=False)
    except ValueError as err:
        raise InvalidValueError(f"not a numeric .npy array: {err}", source=vectors) from None
    names = [line.strip() for line in ids.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = None
    if metadata is not None:
        lines = [ln for ln in metadata.read_text(encoding="utf-8").splitlines() if ln.strip()]
        try:
            rows = [json.loads(line) for line in lines]
        except ValueError as err:
            raise InvalidValueError(f"not JSON lines: {err}", source=metadata) from None
        if len(rows) != len(names):
            raise InvalidValueError(
                f"{len(rows)} metadata lines for {len(names)} ids", source=metadata
            )
    if array.ndim != 2 or array.shape[0] != len(names):
        raise InvalidValueError(
            f"expected [{len(names)}, D] vectors for {len(names)} ids, got {list(array.shape)}",
            source=vectors,
        )
    return names, array, rows


def ingest_vectors(
    index: VectorIndex,
    vectors: Path,
    ids: Path,
    metadata: Path | None = None,
    *,
    batch_size: int = VECTOR_BATCH,
) -> int:
    """Add the items of vector files to ``index`` (see module doc); returns how many."""
    names, array, rows = read_vector_files(vectors, ids, metadata)
    step = max(batch_size, VECTOR_BATCH)
    for start in range(0, len(names), step):
        end = start + step
        index.add(names[start:end], array[start:end], None if rows is None else rows[start:end])
    return len(names)
