"""Which content key a media path had when it was encoded, so readers need not rehash.

Each media column keeps ``sources.jsonl``: one line per path with its size, modification time
(ns) and content key. A reader trusts the recorded key while size and mtime still match (as git's
index does), hashes the file again when they differ, and falls back to the recorded key when the
file is gone, so training on cached features works after the media were moved or deleted.
Encoding always hashes the bytes it encodes; this file only speeds up and decouples reading.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from omnifuse.data.cache.keys import file_key
from omnifuse.errors import InputNotFoundError

SOURCES_FILE = "sources.jsonl"


@dataclass(frozen=True)
class SourceRecord:
    size: int
    mtime_ns: int
    key: str


def stat_of(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class SourceIndex:
    """path → (size, mtime_ns, key) of one column; the last line for a path wins."""

    def __init__(self, column_dir: Path) -> None:
        self.path = column_dir / SOURCES_FILE
        self.records: dict[str, SourceRecord] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    data = json.loads(line)
                    record = SourceRecord(data["size"], data["mtime_ns"], data["key"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by an interrupted append
                self.records[data["source"]] = record

    def record(self, path: str, key: str) -> SourceRecord | None:
        """The record to add for ``path`` hashed to ``key``, or None when nothing changed."""
        stat = stat_of(Path(path))
        if stat is None:
            return None
        record = SourceRecord(stat[0], stat[1], key)
        return None if self.records.get(path) == record else record

    def append(self, new: dict[str, SourceRecord]) -> None:
        """Add records durably; a torn last line from an earlier crash is cut off first."""
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        lines = "".join(
            json.dumps({"source": src, "size": r.size, "mtime_ns": r.mtime_ns, "key": r.key}) + "\n"
            for src, r in new.items()
        )
        with self.path.open("a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        self.records.update(new)

    def key_for(self, path: str, *, modality: str | None = None) -> str:
        """The content key of ``path``: recorded while unchanged or missing, else rehashed."""
        record = self.records.get(path)
        stat = stat_of(Path(path))
        if stat is None:
            if record is None:
                raise InputNotFoundError(
                    "file not found and never encoded", source=path, modality=modality
                )
            return record.key
        if record is not None and (record.size, record.mtime_ns) == stat:
            return record.key
        return file_key(path, modality=modality)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (lines are far shorter than the tail read)."""
    if not path.is_file():
        return
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - (1 << 16))
        f.seek(start)
        tail = f.read()
        if tail and not tail.endswith(b"\n"):
            f.truncate(start + tail.rfind(b"\n") + 1)
