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

MODALITY_KINDS = ("text", "image", "audio", "video", "series", "tabular")
TABLE_ROLES = ("numeric", "categorical")
SPLITS = ("train", "val", "test")


@dataclass
class ManifestSchema:
    """Column roles. ``modalities`` maps a column to its kind (:data:`MODALITY_KINDS`).

    Text columns hold the text itself; image, audio and video columns hold a path relative to the
    manifest; a series column holds a path (``.npy``, ``.npz``, ``.csv``) or the values inline.
    A ``tabular`` modality is a group of ordinary columns, declared in ``tables`` as
    ``{"record": {"numeric": [...], "categorical": [...]}}``: loading gathers them into one
    ``{column: value}`` input, so a fusion sees the whole record as one modality (one token per
    field). ``labels`` are target columns; ``split`` names the split column (absent = no split).
    """

    modalities: dict[str, str] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    split: str | None = "split"
    id: str | None = "id"
    extra: list[str] = field(default_factory=list)
    tables: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestSchema:
        allowed = {"modalities", "labels", "split", "id", "extra", "tables"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown schema keys: {sorted(unknown)}")
        schema = cls(**data)
        bad = {c: k for c, k in schema.modalities.items() if k not in MODALITY_KINDS}
        if bad:
            raise ValueError(f"unknown modality kinds {bad}; use one of {MODALITY_KINDS}")
        schema.check_tables()
        return schema

    def check_tables(self) -> None:
        """Every tabular modality declares a non-empty group of columns, each in one role."""
        tabular = [c for c, kind in self.modalities.items() if kind == "tabular"]
        for column in tabular:
            table = self.tables.get(column)
            if not isinstance(table, dict):
                raise ValueError(
                    f"tabular modality {column!r} needs tables.{column} = "
                    '{"numeric": [...], "categorical": [...]}'
                )
            unknown = set(table) - set(TABLE_ROLES)
            if unknown:
                raise ValueError(f"tables.{column}: unknown roles {sorted(unknown)}")
            fields = [f for role in TABLE_ROLES for f in table.get(role, [])]
            if not fields or not all(isinstance(f, str) and f for f in fields):
                raise ValueError(f"tables.{column} must name at least one column")
            if len(set(fields)) != len(fields):
                raise ValueError(f"tables.{column} names a column twice")
        extra = sorted(set(self.tables) - set(tabular))
        if extra:
            raise ValueError(f"tables declared for {extra}, which are not tabular modalities")

    def table_columns(self, column: str) -> list[str]:
        """The fields of tabular modality ``column``: numeric ones first, then categorical."""
        table = self.tables.get(column, {})
        return [f for role in TABLE_ROLES for f in table.get(role, [])]

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
