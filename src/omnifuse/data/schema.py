"""What the columns of a manifest mean, and the ``dataset.json`` that describes a built dataset.

A manifest is one sample per line. Its schema says which columns are modality inputs (and of which
kind), which are labels, and which one holds the split. Builders write the schema beside the
manifest (``<stem>.schema.json``) so any tool can load the data without guessing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnifuse.fileio import write_json_atomic, write_text_atomic

MODALITY_KINDS = ("text", "image", "audio", "video")
SPLITS = ("train", "val", "test")


@dataclass
class ManifestSchema:
    """Column roles. ``modalities`` maps a column to its kind (text/image/audio/video).

    Text columns hold the text itself; image, audio and video columns hold a path relative to the
    manifest. ``labels`` are target columns; ``split`` names the split column (absent = no split).
    """

    modalities: dict[str, str] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    split: str | None = "split"
    id: str | None = "id"
    extra: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestSchema:
        allowed = {"modalities", "labels", "split", "id", "extra"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown schema keys: {sorted(unknown)}")
        schema = cls(**data)
        bad = {c: k for c, k in schema.modalities.items() if k not in MODALITY_KINDS}
        if bad:
            raise ValueError(f"unknown modality kinds {bad}; use one of {MODALITY_KINDS}")
        return schema

    @classmethod
    def infer(cls, columns: Iterable[str]) -> ManifestSchema:
        """Default roles from column names: ``text``/``image``/``audio``/``video`` are modalities,
        ``label``/``labels``/``answer``/``target`` are labels."""
        cols = list(columns)
        return cls(
            modalities={c: c for c in cols if c in MODALITY_KINDS},
            labels=[c for c in cols if c in ("label", "labels", "answer", "target")],
            split="split" if "split" in cols else None,
            id="id" if "id" in cols else None,
        )


def schema_path_for(manifest: Path) -> Path:
    return manifest.with_name(manifest.stem + ".schema.json")


def write_manifest(path: Path, rows: Iterable[dict[str, Any]], schema: ManifestSchema) -> int:
    """Write ``rows`` as JSONL plus the schema beside it; returns the number of rows."""
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=False) for row in rows]
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    write_json_atomic(schema_path_for(path), schema.to_dict())
    return len(lines)


@dataclass
class DatasetInfo:
    """Contents of ``dataset.json``: what was built, how, and which manifests it holds."""

    name: str
    seed: int
    size: int
    manifests: dict[str, str]  # task name -> manifest file, relative to the dataset folder
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def write(self, out: Path) -> Path:
        path = out / "dataset.json"
        write_json_atomic(path, asdict(self))
        return path

    @classmethod
    def read(cls, out: Path) -> DatasetInfo:
        return cls(**json.loads((out / "dataset.json").read_text(encoding="utf-8")))
