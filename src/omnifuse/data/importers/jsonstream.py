"""The items of one array inside a large JSON file (COCO's ``annotations``, VQA's ``questions``),
read with ijson one item at a time when it is installed (the ``importers`` extra); without it
the file is parsed whole, and the import report says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omnifuse.errors import InputError, InputNotFoundError

WHOLE_FILE_NOTE = (
    "ijson is not installed: {name} was read whole (pip install 'omnifuse[importers]')"
)


def streaming() -> bool:
    try:
        import ijson  # noqa: F401
    except ImportError:
        return False
    return True


def json_items(path: Path, key: str, notes: list[str] | None = None) -> Iterator[Any]:
    """The items of the top-level array ``key`` (nothing when the file has no such key)."""
    _exists(path)
    if not streaming():
        if notes is not None and WHOLE_FILE_NOTE.format(name=path.name) not in notes:
            notes.append(WHOLE_FILE_NOTE.format(name=path.name))
        yield from _whole(path).get(key) or []
        return
    import ijson

    with path.open("rb") as f:
        try:
            yield from ijson.items(f, f"{key}.item", use_float=True)
        except ijson.JSONError as err:
            raise InputError(f"invalid JSON: {err}", source=path, modality="json") from None


def json_value(path: Path, key: str) -> Any:
    """A top-level scalar (``data_subtype``), or None."""
    _exists(path)
    if not streaming():
        return _whole(path).get(key)
    import ijson

    with path.open("rb") as f:
        try:
            return next(ijson.items(f, key), None)
        except ijson.JSONError as err:
            raise InputError(f"invalid JSON: {err}", source=path, modality="json") from None


def _whole(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"invalid JSON: {err}", source=path, modality="json") from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object at the top", source=path, modality="json")
    return data


def _exists(path: Path) -> None:
    if not path.is_file():
        raise InputNotFoundError("file not found", source=path, modality="json")
