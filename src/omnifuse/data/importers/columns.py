"""Records of tables and shards (parquet rows, Hugging Face rows, WebDataset samples) as manifest
rows, with each field's role decided once, from the options, its name or its first value.

- bytes (or a ``{"bytes", "path"}`` struct, as Hugging Face stores ``Image``/``Audio``) become a
  media file; its first value's magic bytes say image, audio or video;
- a string under a media name (``image``, ``audio_path``, …) is a path to a media file;
- a string under a text name (``text``, ``caption``, ``question``, …) is a text modality;
- ``label``/``answer``/``target``/… in the first record are labels (a record without one is
  skipped, as ``omnifuse data check`` would refuse it), ``split`` the split, ``id`` the id;
- anything else is kept as an extra column (JSON values), or left out when it is bytes that
  are no media.

``ImportOptions.columns`` overrides any of these (``caption=text``, ``img=image``, ``x=skip``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omnifuse.data.importers.sink import (
    MEDIA_KINDS,
    ManifestSink,
    RecordError,
    media_kind,
    split_name,
)
from omnifuse.data.schema import ManifestSchema
from omnifuse.errors import ConfigError
from omnifuse.io.sniff import sniff_format

ROLES = (*MEDIA_KINDS, "text", "label", "id", "split", "extra", "skip")
TEXT_NAMES = frozenset(
    {
        "text",
        "txt",
        "caption",
        "question",
        "sentence",
        "title",
        "description",
        "prompt",
        "query",
        "transcript",
        "transcription",
        "instruction",
        "context",
    }
)
LABEL_NAMES = frozenset({"label", "labels", "answer", "target", "class", "cls"})
ID_NAMES = ("id", "__key__", "key", "uid")
MEDIA_NAMES = {
    **{n: n for n in MEDIA_KINDS},
    **{f"{n}_path": n for n in MEDIA_KINDS},
    **{f"{n}_file": n for n in MEDIA_KINDS},
}


def check_roles(columns: Mapping[str, str]) -> None:
    bad = {c: r for c, r in columns.items() if r not in ROLES}
    if bad:
        raise ConfigError(f"--column: unknown role(s) {bad}; use one of {', '.join(ROLES)}")


class RecordConverter:
    """Turns source records into manifest rows through a :class:`ManifestSink`. ``root``: the
    folder relative media paths are taken from; ``label_names``: class names of integer label
    columns (a Hugging Face ``ClassLabel``)."""

    def __init__(
        self,
        sink: ManifestSink,
        root: Path,
        label_names: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        check_roles(sink.options.columns)
        self.sink = sink
        self.root = root
        self.label_names = dict(label_names or {})
        self.roles: dict[str, str] = dict(sink.options.columns)
        self.seen_roles: dict[str, str] = {}
        self._started = False
        self.has_split = False

    def add(
        self,
        position: int,
        record: Mapping[str, Any],
        *,
        key: str | None = None,
        split: str | None = None,
    ) -> None:
        """Convert and write one record (``split``: the source part it came from); a bad one
        is reported by its position and skipped."""
        if not self._started:
            self._first(record)
        try:
            row, media = self._convert(position, record, split)
        except RecordError as err:
            self.sink.skip(position, err, key)
            return
        if self.sink.write(position, row, media, key):
            self.has_split = self.has_split or "split" in row
            for column in row:
                if column in self.roles:
                    self.seen_roles.setdefault(column, self.roles[column])

    def schema(self) -> ManifestSchema:
        """The schema of what was written; an import without any modality column is an error
        that says how to name one."""
        modalities = {c: r for c, r in self.seen_roles.items() if r in (*MEDIA_KINDS, "text")}
        if not any(r in (*MEDIA_KINDS, "text") for r in self.roles.values()):
            fields = ", ".join(sorted(self.roles)) or "none"
            raise ConfigError(
                f"no media or text field found (fields: {fields}); name one with "
                "--column FIELD=image|audio|video|text"
            )
        labels = [c for c, r in self.roles.items() if r == "label"]
        extra = [c for c, r in self.seen_roles.items() if r == "extra"]
        return ManifestSchema(
            modalities=modalities,
            labels=labels,
            split="split" if self.has_split else None,
            extra=extra,
        )

    def _first(self, record: Mapping[str, Any]) -> None:
        """Roles only the first record may give: labels, the id and the split column (a later
        record lacking one is skipped; one that appears later stays an extra column)."""
        self._started = True
        taken = set(self.roles.values())
        if "id" not in taken:
            ident = next((n for n in ID_NAMES if n in record and n not in self.roles), None)
            if ident is not None:
                self.roles[ident] = "id"
        if "split" not in taken and "split" in record and "split" not in self.roles:
            self.roles["split"] = "split"
        for name in record:
            if name not in self.roles and name.lower() in LABEL_NAMES:
                self.roles[name] = "label"

    def _convert(
        self, position: int, record: Mapping[str, Any], split: str | None
    ) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        row: dict[str, Any] = {"id": str(position)}
        media: dict[str, tuple[str, bytes]] = {}
        source_split = split
        for name, value in record.items():
            role = self.roles.get(name) or self._decide(name, value)
            if role == "skip" or role is None:
                continue
            if role == "id":
                if value in (None, ""):
                    raise RecordError("the id is missing", name)
                row["id"] = str(value)
            elif role == "split":
                source_split = value
            elif role == "label":
                row[name] = self._label(name, value)
            elif role == "extra":
                if value is not None:
                    row[name] = value
            elif role == "text":
                if value not in (None, ""):
                    if not isinstance(value, str):
                        raise RecordError(f"expected text, got {type(value).__name__}", name)
                    row[name] = value
            else:
                self._media(name, role, value, row, media)
        for name, role in self.roles.items():
            if role == "label" and name not in record:
                raise RecordError("label is missing", name)
        if not any(self.roles.get(c) in (*MEDIA_KINDS, "text") for c in (*row, *media)):
            raise RecordError("no media or text field present")
        if self.sink.options.split is not None:
            row["split"] = self.sink.options.split
        elif "split" in self.roles.values() or split is not None:
            row["split"] = split_name(source_split)
        return row, media

    def _decide(self, name: str, value: Any) -> str | None:
        """The role of a field first seen with ``value`` (None: undecided while it is empty)."""
        if value is None:
            return None
        if name in ("id", "split"):
            role = "skip"  # a late split column, or an "id" beside the field chosen as id
            self.sink.notes.append(
                f"field {name!r} left out (the id and split come from the first record)"
            )
        elif name.lower() in MEDIA_NAMES and (isinstance(value, str) or _is_media(value)):
            role = MEDIA_NAMES[name.lower()]
        elif _is_media(value):
            data = _struct_bytes(value)
            fmt = sniff_format(data) if data else None
            if data is None and isinstance(value, Mapping) and value.get("path"):
                fmt = sniff_format(self.root / str(value["path"]))
            role = media_kind(fmt) or "skip"
            if role == "skip":
                self.sink.notes.append(f"field {name!r} holds bytes of no media format: left out")
        elif isinstance(value, str) and name.lower() in TEXT_NAMES:
            role = "text"
        else:
            role = "extra"
        self.roles[name] = role
        return role

    def _label(self, name: str, value: Any) -> Any:
        names = self.label_names.get(name)
        if names is not None and isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(names):  # ClassLabel's -1: no label
                raise RecordError(f"label {value} is not a class index", name)
            return names[value]
        if value is None or value == "":
            raise RecordError("label is missing", name)
        return value

    def _media(
        self,
        name: str,
        kind: str,
        value: Any,
        row: dict[str, Any],
        media: dict[str, tuple[str, bytes]],
    ) -> None:
        if value is None or value == "":
            return
        data = _struct_bytes(value)
        if data is not None:
            self.sink.check_bytes(kind, data, name)
            media[name] = (kind, data)
            return
        path = value.get("path") if isinstance(value, Mapping) else value
        if not isinstance(path, str) or not path:
            raise RecordError(f"expected {kind} bytes or a path, got {type(value).__name__}", name)
        file = Path(path) if Path(path).is_absolute() else self.root / path
        row[name] = self.sink.reference(file, kind, name)


def _is_media(value: Any) -> bool:
    """Bytes, or Hugging Face's ``{"bytes", "path"}`` struct of a stored file."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True
    return isinstance(value, Mapping) and bool(value) and set(value) <= {"bytes", "path"}


def _struct_bytes(value: Any) -> bytes | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Mapping) and isinstance(value.get("bytes"), (bytes, bytearray)):
        return bytes(value["bytes"])
    return None
