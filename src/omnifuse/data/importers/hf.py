"""Hugging Face datasets on local disk: a folder written by ``save_to_disk`` (read with
``load_from_disk``, memory-mapped Arrow), or local data files (parquet, JSON lines, CSV, Arrow;
one file or a folder) read by ``load_dataset(..., streaming=True)``. Nothing is downloaded.

``Image``, ``Audio`` and ``Video`` columns are read undecoded (their stored bytes, or the path
they point to) and written out as files as they are; ``ClassLabel`` integers become class names;
a ``DatasetDict``'s parts give the split (``validation`` → ``val``; a part named otherwise, such
as ``unsupervised``, is left out with a note). Fields are read as
:mod:`omnifuse.data.importers.columns` says.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from omnifuse.data.importers.columns import RecordConverter
from omnifuse.data.importers.registry import importers
from omnifuse.data.importers.sink import SPLIT_ALIASES, ManifestSink
from omnifuse.data.schema import ManifestSchema
from omnifuse.errors import ConfigError, MissingDependencyError

BUILDERS = {
    ".parquet": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".arrow": "arrow",
}
"""Local data files ``load_dataset`` reads, by suffix, with the builder that reads them."""
SAVED_MARKERS = ("dataset_dict.json", "state.json")
"""Files ``save_to_disk`` leaves in a DatasetDict's or a Dataset's folder."""


@importers.register("hf-datasets")
def import_hf_datasets(path: Path, sink: ManifestSink) -> ManifestSchema:
    """Hugging Face datasets on disk (save_to_disk folders or local data files)."""
    loaded = _open(path)
    parts = list(loaded.items()) if hasattr(loaded, "keys") else [(None, loaded)]
    converter = RecordConverter(sink, path if path.is_dir() else path.parent)
    position = 0
    for name, part in parts:
        split = None if name is None else SPLIT_ALIASES.get(str(name).lower())
        if name is not None and split is None:
            sink.notes.append(f"part {name!r} left out: it is not a train, val or test split")
            continue
        part, names = _undecoded(part)
        converter.label_names.update(names)
        for index, record in enumerate(part):
            position += 1
            if sink.full(position):
                return converter.schema()
            converter.add(position, record, key=f"{name or 'rows'} row {index}", split=split)
    return converter.schema()


def _open(path: Path) -> Any:
    datasets = _datasets()
    if path.is_dir() and any((path / marker).is_file() for marker in SAVED_MARKERS):
        return datasets.load_from_disk(str(path))
    files = [f for f in path.rglob("*") if f.suffix in BUILDERS] if path.is_dir() else [path]
    builders = Counter(BUILDERS.get(f.suffix.lower()) for f in files)
    builders.pop(None, None)
    if not builders:
        raise ConfigError(
            f"{path}: neither a save_to_disk folder nor local data files "
            f"({', '.join(sorted(BUILDERS))})"
        )
    builder = builders.most_common(1)[0][0]
    where = {"data_dir": str(path)} if path.is_dir() else {"data_files": str(path)}
    return datasets.load_dataset(builder, streaming=True, **where)


def _undecoded(part: Any) -> tuple[Any, dict[str, list[str]]]:
    """The part with its media columns read as stored bytes or paths, and its class names."""
    datasets = _datasets()
    features = getattr(part, "features", None) or {}
    media = (
        datasets.Image,
        datasets.Audio,
        *([datasets.Video] if hasattr(datasets, "Video") else []),
    )
    names: dict[str, list[str]] = {}
    for column, feature in features.items():
        if isinstance(feature, media) and getattr(feature, "decode", False):
            part = part.cast_column(column, dataclasses.replace(feature, decode=False))
        elif isinstance(feature, datasets.ClassLabel):
            names[column] = list(feature.names)
    return part, names


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("Hugging Face datasets import", extra="importers") from None
    return datasets
