"""Where an importer's records go: a manifest written line by line, media files beside it, and
the records that were skipped, by position.

An importer never holds its source in memory: it reads one record, hands the sink a row (and the
bytes of the media it carries), and moves on. The manifest is written to a temporary file that
replaces ``<out>/<name>.jsonl`` only when the import finishes, so an interrupted import leaves
the previous manifest (or none), never half of one; the schema is written last, from what the
records turned out to hold.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnifuse.data.schema import SPLITS, ManifestSchema, schema_path_for
from omnifuse.errors import ConfigError, InputError
from omnifuse.fileio import json_ready, write_json_atomic
from omnifuse.io.limits import DEFAULT_LIMITS
from omnifuse.io.sniff import AUDIO_FORMATS, CONTAINER_FORMATS, IMAGE_FORMATS, sniff_format

MEDIA_KINDS = ("image", "audio", "video")
ACCEPTED_FORMATS = {
    "image": IMAGE_FORMATS,
    "audio": AUDIO_FORMATS | CONTAINER_FORMATS,
    "video": CONTAINER_FORMATS - {"ogg"},
}
"""Formats a column of each kind may hold (an audio track may come in an MP4 or Ogg box)."""
SUFFIXES = {"jpeg": "jpg", "tiff": "tif"}
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
"""Split names sources use → the manifest's (``validation`` is ``val``)."""
FILES_PER_FOLDER = 10_000
_UNSAFE = re.compile(r"[^\w.\-]")


class RecordError(Exception):
    """A record cannot be imported; the importer skips it and the sink reports it."""

    def __init__(self, reason: str, column: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


@dataclass(frozen=True)
class ImportIssue:
    """A skipped source record: its 1-based position in reading order, its own key where it
    has one (an annotation id, a WebDataset key, a file and row), the field at fault and why."""

    position: int
    reason: str
    column: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = f"record {self.position}" + (f" ({self.key})" if self.key else "")
        if self.column:
            where += f", column {self.column!r}"
        return f"{where}: {self.reason}"


@dataclass
class ImportReport:
    """What an import wrote: the manifest and its schema, how many rows and media files, the
    skipped records and notes on how the source was read."""

    manifest: Path
    schema: ManifestSchema
    rows: int
    media_files: int
    issues: list[ImportIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportOptions:
    """Settings an importer may use. ``split``: the split of every record (the source's own
    split names are then ignored); ``columns``: source field → role (a modality kind, ``label``,
    ``id``, ``split``, ``extra`` or ``skip``) where guessing from names and contents is not
    wanted; ``images``: the folder of COCO/VQA image files; ``annotations``: VQA's answers;
    ``image_name``: VQA's image file pattern; ``limit``: stop after that many source records;
    ``decode``: decode every media item, so records whose media do not decode are skipped
    here rather than found by ``omnifuse data check --decode`` (False: check the first bytes
    only, faster)."""

    split: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    images: Path | None = None
    annotations: Path | None = None
    image_name: str | None = None
    limit: int | None = None
    decode: bool = True
    name: str = "manifest"

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")
        if not self.name or _UNSAFE.search(self.name):
            raise ConfigError(f"--name must be a plain file name, got {self.name!r}")


def split_name(value: Any) -> str:
    """The manifest's split for a source's split name (``validation`` → ``val``)."""
    split = SPLIT_ALIASES.get(str(value).strip().lower()) if value is not None else None
    if split is None:
        raise RecordError(f"split {value!r} is not train, val(idation) or test", "split")
    return split


def media_kind(fmt: str | None) -> str | None:
    """The modality kind of a sniffed format (containers count as video)."""
    for kind in ("image", "video", "audio"):
        if fmt in ACCEPTED_FORMATS[kind]:
            return kind
    return None


class ManifestSink:
    """Writes rows to ``<out>/<name>.jsonl`` as they come and media under ``<out>/media/``."""

    def __init__(self, out: Path, options: ImportOptions) -> None:
        self.out = out.resolve()
        self.options = options
        self.path = self.out / f"{options.name}.jsonl"
        self.issues: list[ImportIssue] = []
        self.notes: list[str] = []
        self.rows = 0
        self.media_files = 0
        self._ids: set[str] = set()
        self.out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.out, prefix=f".{self.path.name}.", suffix=".tmp")
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "w", encoding="utf-8")

    def full(self, position: int) -> bool:
        """Whether ``limit`` source records have been read before ``position``."""
        return self.options.limit is not None and position > self.options.limit

    def skip(self, position: int, error: RecordError, key: str | None = None) -> None:
        self.issues.append(ImportIssue(position, error.reason, error.column, key))

    def write(
        self,
        position: int,
        row: dict[str, Any],
        media: Mapping[str, tuple[str, bytes]] | None = None,
        key: str | None = None,
    ) -> bool:
        """Write one row; ``media`` maps a column to (kind, bytes) to store as a file whose
        path becomes the column's value. False (and an issue) for a duplicate id."""
        ident = str(row["id"])
        if ident in self._ids:
            self.skip(position, RecordError(f"duplicate id {ident!r}", "id"), key)
            return False
        for column, (kind, data) in (media or {}).items():
            row[column] = self._store(column, kind, data, position)
        self._ids.add(ident)
        self._file.write(json.dumps(json_ready(row), ensure_ascii=False, default=str) + "\n")
        self.rows += 1
        return True

    def check_bytes(self, kind: str, data: bytes, column: str) -> None:
        """Refuse bytes that are not media of ``kind``: by their first bytes, then by decoding
        them unless the options say not to."""
        if len(data) > DEFAULT_LIMITS.max_bytes:
            raise RecordError(
                f"{len(data)} bytes, over the {DEFAULT_LIMITS.max_bytes} limit", column
            )
        fmt = sniff_format(data)
        if fmt not in ACCEPTED_FORMATS[kind]:
            found = f"{fmt} data" if fmt else "no known media format"
            raise RecordError(f"expected {kind} bytes, found {found}", column)
        if self.options.decode:
            _decode(kind, data, column)

    def reference(self, file: Path, kind: str, column: str) -> str:
        """The manifest path of an existing media file (relative to the manifest), checked as
        :meth:`check_bytes` checks bytes."""
        if not file.is_file():
            raise RecordError(f"file not found: {file}", column)
        fmt = sniff_format(file)
        if fmt not in ACCEPTED_FORMATS[kind]:
            found = f"{fmt} data" if fmt else "no known media format"
            raise RecordError(f"expected a {kind} file, found {found}: {file}", column)
        if self.options.decode:
            _decode(kind, file, column)
        return Path(os.path.relpath(file.resolve(), self.out)).as_posix()

    def finish(self, schema: ManifestSchema) -> ImportReport:
        """Put the manifest in place and write its schema beside it."""
        self._file.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        write_json_atomic(schema_path_for(self.path), schema.to_dict())
        return ImportReport(self.path, schema, self.rows, self.media_files, self.issues, self.notes)

    def abandon(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def _store(self, column: str, kind: str, data: bytes, position: int) -> str:
        fmt = sniff_format(data) or kind
        folder = Path("media") / _UNSAFE.sub("_", column) / f"{position // FILES_PER_FOLDER:05d}"
        relative = folder / f"{position:08d}.{SUFFIXES.get(fmt, fmt)}"
        (self.out / folder).mkdir(parents=True, exist_ok=True)
        (self.out / relative).write_bytes(data)
        self.media_files += 1
        return relative.as_posix()


def _decode(kind: str, src: bytes | Path, column: str) -> None:
    from omnifuse import io

    loaders: dict[str, Callable[[Any], Any]] = {
        "image": io.load_image,
        "audio": io.load_audio,
        "video": io.load_video,
    }
    try:
        loaders[kind](src)
    except InputError as err:
        raise RecordError(f"{type(err).__name__}: {err.reason}", column) from None
