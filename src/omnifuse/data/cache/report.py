"""What an encode run reports: counts per column and every item that has no features."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omnifuse.data.cache.store import ERRORS_FILE
from omnifuse.data.manifest import Manifest
from omnifuse.fileio import write_text_atomic


@dataclass(frozen=True)
class SkippedItem:
    """One manifest value (or line) that has no features, and why."""

    sample: str
    column: str | None
    error: str
    reason: str


@dataclass
class ColumnReport:
    """Counts for one column. ``encoded`` and ``reused`` count distinct contents."""

    encoder: str
    items: int = 0
    encoded: int = 0
    reused: int = 0
    skipped: int = 0


@dataclass
class EncodeReport:
    """What one ``encode_manifest`` run did; ``interrupted`` when it stopped before the end."""

    out: Path
    columns: dict[str, ColumnReport] = field(default_factory=dict)
    skipped: list[SkippedItem] = field(default_factory=list)
    seconds: float = 0.0
    encode_seconds: float = 0.0
    interrupted: bool = False

    @property
    def encoded(self) -> int:
        return sum(c.encoded for c in self.columns.values())

    @property
    def reused(self) -> int:
        return sum(c.reused for c in self.columns.values())

    @property
    def items_per_second(self) -> float:
        """Encoding throughput: new contents per second of preprocessing, encoding and writing
        (model loading and hashing left out)."""
        return self.encoded / self.encode_seconds if self.encode_seconds > 0 else 0.0


def manifest_skips(manifest: Manifest) -> list[SkippedItem]:
    return [
        SkippedItem(f"line {issue.line}", issue.column, "ManifestIssue", issue.reason)
        for issue in manifest.issues
    ]


def write_errors(root: Path, skipped: list[SkippedItem]) -> None:
    lines = [json.dumps(asdict(item), ensure_ascii=False) + "\n" for item in skipped]
    write_text_atomic(root / ERRORS_FILE, "".join(lines))
