"""The importers by format name, and the one way to run one (:func:`import_source`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omnifuse.data.importers.sink import ImportOptions, ImportReport, ManifestSink
from omnifuse.data.schema import ManifestSchema
from omnifuse.errors import InputNotFoundError
from omnifuse.registry import Registry

Importer = Callable[[Path, ManifestSink], ManifestSchema]
"""Reads ``path`` record by record into the sink and returns the schema of what it wrote."""

importers: Registry[ManifestSchema] = Registry(
    "importer",
    [
        f"omnifuse.data.importers.{module}"
        for module in ("coco", "vqa", "hf", "webdataset", "parquet")
    ],
)


def import_source(
    format: str, path: str | Path, out: str | Path, options: ImportOptions | None = None
) -> ImportReport:
    """Write ``<out>/<name>.jsonl`` and its schema from the source at ``path`` in ``format``
    (see :func:`formats`); skipped records are in the report, by position."""
    importer = importers.get(format)
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError("source not found", source=path, modality=format)
    sink = ManifestSink(Path(out), options or ImportOptions())
    try:
        schema = importer(path, sink)
        return sink.finish(schema)
    finally:
        sink.abandon()


def formats() -> list[str]:
    return importers.list()
