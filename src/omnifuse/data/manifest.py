"""Manifests: one sample per line in JSONL or CSV, validated line by line.

Modality columns hold text itself or a path relative to the manifest; the schema
(:class:`~omnifuse.data.schema.ManifestSchema`) says which is which. Validation reports every bad
line with its number, column and reason; loading skips bad lines and counts them unless
``strict``, in which case one :class:`~omnifuse.errors.ManifestError` lists them all.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnifuse.data.schema import SPLITS, ManifestSchema, schema_path_for
from omnifuse.errors import EmptyInputError, InputError, InputNotFoundError, ManifestError

MANIFEST_SUFFIXES = (".jsonl", ".csv")


@dataclass(frozen=True)
class ManifestIssue:
    """One problem of one line (1-based); ``column`` is None for whole-line problems."""

    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass
class Manifest:
    """The valid samples of a manifest, with media paths made absolute, and what was skipped."""

    path: Path
    schema: ManifestSchema
    samples: list[dict[str, Any]]
    issues: list[ManifestIssue] = field(default_factory=list)

    @property
    def skipped_lines(self) -> int:
        return len({issue.line for issue in self.issues})

    def __len__(self) -> int:
        return len(self.samples)

    def split(self, name: str) -> list[dict[str, Any]]:
        """Samples of one split; all samples when the manifest has no split column."""
        if self.schema.split is None:
            return list(self.samples)
        return [s for s in self.samples if s.get(self.schema.split) == name]

    def split_counts(self) -> dict[str, int]:
        if self.schema.split is None:
            return {"all": len(self.samples)}
        return dict(Counter(str(s.get(self.schema.split)) for s in self.samples))


def load_manifest(
    path: str | Path,
    schema: ManifestSchema | None = None,
    *,
    strict: bool = False,
    decode: bool = False,
    check_files: bool = True,
) -> Manifest:
    """Read and validate a manifest; bad lines are skipped and listed unless ``strict``.

    ``check_files=False`` trusts media paths without looking at them (for training on cached
    features after the media have moved). ``decode=True`` also decodes every referenced file
    with :mod:`omnifuse.io`, which finds corrupt media up front at the cost of reading it all.
    """
    path = _existing_manifest(path)
    schema = resolve_schema(path, schema)
    samples: list[dict[str, Any]] = []
    issues: list[ManifestIssue] = []
    seen_ids: dict[str, int] = {}
    for line_no, row in _read_rows(path):
        if isinstance(row, ManifestIssue):
            issues.append(row)
            continue
        row_issues = validate_row(
            row, line_no, schema, path.parent, decode=decode, check_files=check_files
        )
        row_issues += _duplicate_id(row, line_no, schema, seen_ids)
        if row_issues:
            issues.extend(row_issues)
        else:
            samples.append(_resolve_paths(row, schema, path.parent))
    if strict and issues:
        listing = "\n".join(f"  {issue}" for issue in issues[:50])
        more = f"\n  ... and {len(issues) - 50} more" if len(issues) > 50 else ""
        raise ManifestError(
            f"{len(issues)} problem(s):\n{listing}{more}", source=path, issues=issues
        )
    if not samples and not issues:
        raise EmptyInputError("the manifest has no samples", source=path, modality="manifest")
    return Manifest(path=path, schema=schema, samples=samples, issues=issues)


def check_manifest(
    path: str | Path, schema: ManifestSchema | None = None, *, decode: bool = False
) -> list[ManifestIssue]:
    """Every problem of the manifest, line by line; an empty list means it is clean."""
    try:
        return load_manifest(path, schema, decode=decode).issues
    except EmptyInputError as err:
        return [ManifestIssue(0, None, err.reason)]


def resolve_schema(path: Path, schema: ManifestSchema | None) -> ManifestSchema:
    """The explicit schema, else the ``<stem>.schema.json`` sidecar, else names decide roles."""
    if schema is not None:
        return schema
    sidecar = schema_path_for(path)
    if sidecar.is_file():
        try:
            return ManifestSchema.from_dict(json.loads(sidecar.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as err:
            raise ManifestError(f"bad schema file: {err}", source=sidecar) from err
    return ManifestSchema.infer(_column_names(path))


def validate_row(
    row: dict[str, Any],
    line: int,
    schema: ManifestSchema,
    root: Path,
    *,
    decode: bool = False,
    check_files: bool = True,
) -> list[ManifestIssue]:
    """Problems of one parsed row: column types, files that must exist, labels, split."""
    issues: list[ManifestIssue] = []
    present = 0
    for column, kind in schema.modalities.items():
        value = table_record(row, column, schema) if kind == "tabular" else row.get(column)
        if value is None or value == "":
            continue  # a missing modality is allowed; the sample just lacks it
        present += 1
        if kind == "tabular":
            problem = _record_problem(value, column, schema)
        else:
            problem = _check_modality_value(
                value, kind, root, decode=decode, check_files=check_files
            )
        if problem:
            issues.append(ManifestIssue(line, column, problem))
    if schema.modalities and present == 0:
        names = ", ".join(schema.modalities)
        issues.append(ManifestIssue(line, None, f"no modality present (expected one of: {names})"))
    for column in schema.labels:
        if row.get(column) in (None, ""):
            issues.append(ManifestIssue(line, column, "label is missing or empty"))
    if schema.split is not None:
        split = row.get(schema.split)
        if split not in SPLITS:
            issues.append(
                ManifestIssue(
                    line, schema.split, f"split {split!r} is not one of {', '.join(SPLITS)}"
                )
            )
    return issues


def table_record(row: dict[str, Any], column: str, schema: ManifestSchema) -> Any:
    """The record of tabular modality ``column``: an inline mapping under the column's own name,
    else its declared fields gathered from the row (absent fields stay absent, so checking names
    them); None when every field is missing, as for any absent modality."""
    if column in row and row[column] not in (None, ""):
        return row[column]
    fields = schema.table_columns(column)
    record = {f: row[f] for f in fields if f in row}
    if all(record.get(f) in (None, "") for f in fields):
        return None
    return record


def _record_problem(value: Any, column: str, schema: ManifestSchema) -> str | None:
    from omnifuse.io.table import load_record

    table = schema.tables[column]
    try:
        load_record(value, table.get("numeric", []), table.get("categorical", []))
    except InputError as err:
        return f"{type(err).__name__}: {err.reason}"
    return None


def _check_modality_value(
    value: Any, kind: str, root: Path, *, decode: bool, check_files: bool = True
) -> str | None:
    if kind == "series" and isinstance(value, (list, dict)):
        return _decode_problem(kind, value) if decode else None
    if not isinstance(value, str):
        expected = "a string" if kind == "text" else "a path string"
        return f"expected {expected}, got {type(value).__name__}"
    if kind == "text":
        return _decode_problem(kind, value) if decode else None
    file = resolve_media_path(value, root)
    if not check_files:
        return None
    if not file.exists():
        return f"file not found: {value}"
    if not file.is_file():
        return f"not a regular file: {value}"
    return _decode_problem(kind, file) if decode else None


def _decode_problem(kind: str, value: Any) -> str | None:
    try:
        _loader(kind)(value)
    except InputError as err:
        return f"{type(err).__name__}: {err.reason}"
    return None


def _loader(kind: str) -> Callable[[Any], Any]:
    from omnifuse import io

    loaders: dict[str, Callable[[Any], Any]] = {
        "text": io.load_text,
        "image": io.load_image,
        "audio": io.load_audio,
        "video": io.load_video,
        "series": io.load_series,
    }
    return loaders[kind]


def resolve_media_path(value: str, root: Path) -> Path:
    """A media path of a manifest: absolute as given, else relative to the manifest's folder."""
    path = Path(value)
    return path if path.is_absolute() else root / path


def _resolve_paths(row: dict[str, Any], schema: ManifestSchema, root: Path) -> dict[str, Any]:
    sample = dict(row)
    for column, kind in schema.modalities.items():
        if kind == "tabular":
            sample[column] = table_record(row, column, schema)
        value = sample.get(column)
        if kind not in ("text", "tabular") and isinstance(value, str) and value:
            sample[column] = str(resolve_media_path(value, root))
        elif value in (None, ""):
            sample.pop(column, None)
    return sample


def _duplicate_id(
    row: dict[str, Any], line: int, schema: ManifestSchema, seen: dict[str, int]
) -> list[ManifestIssue]:
    if schema.id is None or schema.id not in row:
        return []
    key = str(row[schema.id])
    if key in seen:
        return [ManifestIssue(line, schema.id, f"duplicate id {key!r} (first on line {seen[key]})")]
    seen[key] = line
    return []


def _existing_manifest(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError("manifest not found", source=path, modality="manifest")
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ManifestError(
            f"unsupported manifest type {path.suffix!r}; use .jsonl or .csv", source=path
        )
    return path


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | ManifestIssue]]:
    if path.suffix.lower() == ".csv":
        yield from _read_csv_rows(path)
    else:
        yield from _read_jsonl_rows(path)


def _read_jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | ManifestIssue]]:
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield line_no, ManifestIssue(line_no, None, f"not UTF-8 (byte {err.start})")
                continue
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                yield (
                    line_no,
                    ManifestIssue(line_no, None, f"invalid JSON: {err.msg} at column {err.colno}"),
                )
                continue
            if not isinstance(row, dict):
                yield (
                    line_no,
                    ManifestIssue(
                        line_no, None, f"expected a JSON object, got {type(row).__name__}"
                    ),
                )
                continue
            yield line_no, row


def _read_csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | ManifestIssue]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        yield 1, ManifestIssue(1, None, f"CSV is not UTF-8 (byte {err.start})")
        return
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header:
        return
    for row_values in reader:
        line_no = reader.line_num
        if not any(v.strip() for v in row_values):
            continue
        if len(row_values) != len(header):
            yield (
                line_no,
                ManifestIssue(
                    line_no, None, f"expected {len(header)} fields, found {len(row_values)}"
                ),
            )
            continue
        yield line_no, dict(zip(header, row_values, strict=True))


def _column_names(path: Path) -> list[str]:
    """Columns for schema inference: the CSV header, or the keys of every JSONL object."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f), [])
    names: dict[str, None] = {}
    for _, row in _read_jsonl_rows(path):
        if isinstance(row, dict):
            names.update(dict.fromkeys(row))
    return list(names)
