"""Parquet files (one file, or every ``*.parquet`` under a folder): rows read in batches through
pyarrow's ``iter_batches``, so only one batch is in memory; image/audio bytes are written out as
files, text and labels kept (see :mod:`omnifuse.data.importers.columns` for how fields are read).

Files written by Hugging Face ``datasets`` carry their features in the schema's metadata: a
``ClassLabel`` column's integers are then written as class names. Under a folder, a file whose
name starts with a split (``train-00000-of-00002.parquet``, ``validation.parquet``) gives its
rows that split.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omnifuse.data.importers.columns import RecordConverter
from omnifuse.data.importers.registry import importers
from omnifuse.data.importers.sink import SPLIT_ALIASES, ManifestSink
from omnifuse.data.schema import ManifestSchema
from omnifuse.errors import ConfigError, CorruptInputError, MissingDependencyError

BATCH_ROWS = 256


@importers.register("parquet")
def import_parquet(path: Path, sink: ManifestSink) -> ManifestSchema:
    """Parquet file(s): media bytes written out, text and labels kept."""
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"{path}: no .parquet files")
    splits = {f: _split_of(f) for f in files} if path.is_dir() else {}
    if None in splits.values():
        splits = {}  # only when every file names its split
    converter = RecordConverter(sink, path if path.is_dir() else path.parent)
    position = 0
    for file in files:
        converter.label_names.update(class_names(file))
        for row_index, record in enumerate(parquet_rows(file)):
            position += 1
            if sink.full(position):
                return converter.schema()
            key = f"{file.name} row {row_index}"
            converter.add(position, record, key=key, split=splits.get(file))
    return converter.schema()


def parquet_rows(file: Path) -> Iterator[dict[str, Any]]:
    """The rows of one parquet file as dicts, a batch at a time."""
    pq = _pyarrow_parquet()
    try:
        reader = pq.ParquetFile(file)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
        raise CorruptInputError(f"not a parquet file ({err})", source=file) from None
    try:
        for batch in reader.iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()
    except (OSError, ValueError) as err:  # ArrowIOError, ArrowInvalid
        raise CorruptInputError(f"unreadable parquet data ({err})", source=file) from None


def class_names(file: Path) -> dict[str, list[str]]:
    """``ClassLabel`` names from the Hugging Face features in a parquet file's metadata."""
    pq = _pyarrow_parquet()
    try:
        metadata = pq.read_schema(file).metadata or {}
        features = json.loads(metadata[b"huggingface"])["info"]["features"]
    except (KeyError, TypeError, ValueError, OSError):
        return {}
    return {
        column: list(feature["names"])
        for column, feature in features.items()
        if isinstance(feature, dict)
        and feature.get("_type") == "ClassLabel"
        and isinstance(feature.get("names"), list)
    }


def _split_of(file: Path) -> str | None:
    first = re.split(r"[-_.]", file.name, maxsplit=1)[0].lower()
    return SPLIT_ALIASES.get(first)


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("parquet import (pyarrow)", extra="importers") from None
    return pq
