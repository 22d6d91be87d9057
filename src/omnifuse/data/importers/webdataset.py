"""WebDataset shards: one ``.tar`` (or ``.tar.gz``), or every shard under a folder, read as a
stream (``tarfile`` in ``r|*`` mode: one member at a time, never the whole archive).

A sample is the run of consecutive members that share a key — the member's path up to the first
dot of its file name — and each member's extension names its field: ``jpg``/``png``/… are image
bytes, ``wav``/``flac``/``mp3``/… audio, ``mp4``/``webm``/… video (written out as files);
``txt`` is the text, ``cls`` the label, and a ``json`` member's object adds its fields
(``{"caption": ..., "label": ...}``). Other members are text when they decode as UTF-8 (an
extra column named by the extension), media when their bytes are, and left out otherwise. The
sample's key is its id. Fields are then read as :mod:`omnifuse.data.importers.columns` says.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omnifuse.data.importers.columns import RecordConverter
from omnifuse.data.importers.registry import importers
from omnifuse.data.importers.sink import ManifestSink, RecordError
from omnifuse.data.schema import ManifestSchema
from omnifuse.errors import ConfigError, CorruptInputError
from omnifuse.io.limits import DEFAULT_LIMITS

IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"})
AUDIO_EXTS = frozenset({"wav", "flac", "mp3", "ogg", "m4a", "aac", "aiff"})
VIDEO_EXTS = frozenset({"mp4", "webm", "mkv", "avi", "mov"})
TEXT_EXTS = {"txt": "text", "text": "text"}
LABEL_EXTS = {"cls": "label", "cls2": "label", "label": "label"}
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


@importers.register("webdataset")
def import_webdataset(path: Path, sink: ManifestSink) -> ManifestSchema:
    """WebDataset .tar shards: media members written out, txt/json/cls fields kept."""
    shards = _shards(path)
    converter = RecordConverter(sink, path if path.is_dir() else path.parent)
    position = 0
    for shard in shards:
        for key, members in samples(shard):
            position += 1
            if sink.full(position):
                return converter.schema()
            try:
                record = sample_record(key, members)
            except RecordError as err:
                sink.skip(position, err, f"{shard.name} {key}")
                continue
            converter.add(position, record, key=f"{shard.name} {key}")
    return converter.schema()


def samples(shard: Path) -> Iterator[tuple[str, dict[str, bytes | RecordError]]]:
    """(key, {extension: bytes}) for each run of members sharing a key; a member over the byte
    limit is not read (its field holds the error)."""
    key: str | None = None
    members: dict[str, bytes | RecordError] = {}
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                if name.startswith("."):
                    continue
                stem, dot, ext = name.partition(".")
                if not dot:
                    continue
                member_key = f"{folder}/{stem}" if folder else stem
                if member_key != key and key is not None:
                    yield key, members
                    members = {}
                key = member_key
                members[ext.lower()] = _read(tar, member)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise CorruptInputError(f"unreadable tar ({err})", source=shard) from None
    if key is not None:
        yield key, members


def sample_record(key: str, members: dict[str, bytes | RecordError]) -> dict[str, Any]:
    """A sample's fields: ``__key__``, media bytes under their kind, text, label, json fields."""
    record: dict[str, Any] = {"__key__": key}
    extras: dict[str, Any] = {}
    for ext, data in members.items():
        if isinstance(data, RecordError):
            raise RecordError(data.reason, ext)
        last = ext.rpartition(".")[2]
        if last in IMAGE_EXTS | AUDIO_EXTS | VIDEO_EXTS:
            kind = "image" if last in IMAGE_EXTS else "audio" if last in AUDIO_EXTS else "video"
            record[kind if kind not in record else ext] = data
        elif last == "json":
            extras.update(_json_fields(data, ext))
        elif last in LABEL_EXTS or ext in TEXT_EXTS:
            text = _utf8(data, ext).strip()
            record["label" if last in LABEL_EXTS else TEXT_EXTS[ext]] = text
        else:  # text when it reads as UTF-8; bytes otherwise (media if they sniff as media)
            try:
                record[ext] = data.decode("utf-8").strip()
            except UnicodeDecodeError:
                record[ext] = data
    for name, value in extras.items():
        record.setdefault(name, value)
    return record


def _shards(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    shards = sorted(p for p in path.rglob("*") if p.name.endswith(SHARD_SUFFIXES))
    if not shards:
        raise ConfigError(f"{path}: no .tar shards")
    return shards


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | RecordError:
    if member.size > DEFAULT_LIMITS.max_bytes:
        return RecordError(f"{member.size} bytes, over the {DEFAULT_LIMITS.max_bytes} limit")
    handle = tar.extractfile(member)
    return handle.read() if handle is not None else b""


def _json_fields(data: bytes, ext: str) -> dict[str, Any]:
    try:
        value = json.loads(_utf8(data, ext))
    except json.JSONDecodeError as err:
        raise RecordError(f"invalid JSON: {err.msg} at column {err.colno}", ext) from None
    return value if isinstance(value, dict) else {ext: value}


def _utf8(data: bytes, ext: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordError(f"not UTF-8 (byte {err.start})", ext) from None
