"""On-disk layout of a feature cache: ``cache.json``, and per column safetensors shards.

A shard holds the features of up to ``shard_size`` items: ``pooled`` (N, D) float32 and, when
tokens are stored, ``tokens`` (sum T_i, D) with each item trimmed to its real tokens plus
``offsets`` (N+1) int64 (item i is ``tokens[offsets[i]:offsets[i+1]]``). The shard's metadata
lists the content keys of its rows and the keys of the items that failed in the same group with
their reasons. The shard itself is the commit: it is written to a temporary file, flushed to disk
and renamed, so a shard either exists whole or not at all and there is no separate index that
could disagree with it. Opening a column reads only the shard headers to build key → (shard, row).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from omnifuse.errors import ConfigError, CorruptInputError, InputNotFoundError
from omnifuse.fileio import replace_atomic, write_json_atomic

FORMAT = "omnifuse-features/1"
META_FILE = "cache.json"
ERRORS_FILE = "errors.jsonl"
SHARD_PATTERN = re.compile(r"^shard-(\d{5,})\.safetensors$")
TOKEN_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
_SAFE_DIRNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_OPEN_SHARDS = 64


@dataclass
class ColumnInfo:
    """How one manifest column was encoded; two runs may share a column only if these agree."""

    column: str
    kind: str
    encoder: str
    config: dict[str, Any]
    fingerprint: str
    dim: int
    tokens: bool
    tokens_dtype: str
    dirname: str

    def storage_conflicts(self, other: ColumnInfo) -> list[str]:
        """Differences that make ``other`` unable to write into this column."""
        fields = ("kind", "fingerprint", "dim", "tokens", "tokens_dtype")
        return [
            f"{name}: cached {getattr(self, name)!r}, requested {getattr(other, name)!r}"
            for name in fields
            if getattr(self, name) != getattr(other, name)
        ]


@dataclass
class CacheMeta:
    """Contents of ``cache.json``: the columns of the cache and how each was encoded."""

    columns: dict[str, ColumnInfo] = field(default_factory=dict)
    format: str = FORMAT

    @classmethod
    def read(cls, root: Path) -> CacheMeta:
        path = root / META_FILE
        if not path.is_file():
            raise InputNotFoundError("not a feature cache (no cache.json)", source=root)
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ConfigError(f"{path}: unsupported cache format {data.get('format')!r}")
        columns = {name: ColumnInfo(**info) for name, info in data["columns"].items()}
        return cls(columns=columns)

    def write(self, root: Path) -> None:
        data = {"format": self.format, "columns": {n: asdict(c) for n, c in self.columns.items()}}
        write_json_atomic(root / META_FILE, data)


def column_dirname(column: str, taken: set[str]) -> str:
    """A folder name for a column: the name itself when it is a safe file name that no other
    column takes (compared case-insensitively, for such file systems), else a hash."""
    import hashlib

    reserved = {name.lower() for name in (*taken, META_FILE, ERRORS_FILE)}
    if _SAFE_DIRNAME.match(column) and column.lower() not in reserved:
        return column
    return "col-" + hashlib.sha256(column.encode("utf-8")).hexdigest()[:16]


@dataclass
class Row:
    """Features of one item ready to store: real tokens only (T, D) and the pooled vector (D,)."""

    key: str
    tokens: torch.Tensor
    pooled: torch.Tensor


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.safetensors"


def _shard_metadata(path: Path) -> dict[str, str]:
    """The header metadata of a shard; a shard that cannot be parsed is reported by path."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for damaged headers
        raise CorruptInputError(f"unreadable feature shard: {err}", source=path) from err


class ColumnStore:
    """The shards of one column: which keys they hold, appending new shards, reading rows."""

    def __init__(self, root: Path, info: ColumnInfo) -> None:
        self.info = info
        self.dir = root / info.dirname
        self.index: dict[str, tuple[int, int]] = {}
        self.rejected: dict[str, dict[str, str]] = {}
        self.next_shard = 0
        self._handles: OrderedDict[int, Any] = OrderedDict()
        self._offsets: dict[int, torch.Tensor] = {}
        self._scan()

    def _scan(self) -> None:
        if not self.dir.is_dir():
            return
        numbers = sorted(
            int(m.group(1)) for p in self.dir.iterdir() if (m := SHARD_PATTERN.match(p.name))
        )
        for number in numbers:
            meta = _shard_metadata(self.dir / shard_name(number))
            for row, key in enumerate(json.loads(meta.get("keys", "[]"))):
                self.index.setdefault(key, (number, row))
            self.rejected.update(json.loads(meta.get("rejected", "{}")))
        self.next_shard = numbers[-1] + 1 if numbers else 0

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    # -- writing ---------------------------------------------------------------------------

    def remove_partial_shards(self) -> None:
        """Delete temporary files left by a writer that was interrupted mid-shard."""
        if self.dir.is_dir():
            for path in self.dir.glob(".shard-*.tmp"):
                path.unlink(missing_ok=True)

    def append(self, rows: list[Row], rejected: dict[str, dict[str, str]]) -> Path:
        """Write one shard holding ``rows`` (and the group's failures) atomically."""
        number = self.next_shard
        path = self.dir / shard_name(number)
        metadata = {
            "format": FORMAT,
            "column": self.info.column,
            "fingerprint": self.info.fingerprint,
            "keys": json.dumps([row.key for row in rows]),
            "rejected": json.dumps(rejected, sort_keys=True),
        }
        tensors = self._tensors(rows)
        replace_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata), durable=True)
        for row_number, row in enumerate(rows):
            self.index.setdefault(row.key, (number, row_number))
        self.rejected.update(rejected)
        self.next_shard = number + 1
        return path

    def _tensors(self, rows: list[Row]) -> dict[str, torch.Tensor]:
        dim = self.info.dim
        pooled = torch.stack([r.pooled for r in rows]) if rows else torch.zeros(0, dim)
        tensors = {"pooled": pooled.to(torch.float32).contiguous()}
        if self.info.tokens:
            lengths = torch.tensor([0] + [int(r.tokens.shape[0]) for r in rows])
            tokens = torch.cat([r.tokens for r in rows]) if rows else torch.zeros(0, dim)
            tensors["tokens"] = tokens.to(TOKEN_DTYPES[self.info.tokens_dtype]).contiguous()
            tensors["offsets"] = torch.cumsum(lengths, 0).to(torch.int64)
        return tensors

    # -- reading ---------------------------------------------------------------------------

    def _handle(self, number: int) -> Any:
        """A memory-mapped reader of one shard, kept open in a small LRU."""
        handle = self._handles.get(number)
        if handle is None:
            handle = safe_open(str(self.dir / shard_name(number)), framework="pt")
            self._handles[number] = handle
            if len(self._handles) > _OPEN_SHARDS:
                self._handles.popitem(last=False)
        else:
            self._handles.move_to_end(number)
        return handle

    def locate(self, key: str) -> tuple[int, int]:
        try:
            return self.index[key]
        except KeyError:
            raise KeyError(f"column {self.info.column!r} has no features for key {key}") from None

    def read_pooled(self, key: str) -> torch.Tensor:
        """(D,) float32 pooled vector of one item."""
        number, row = self.locate(key)
        return self._handle(number).get_slice("pooled")[row : row + 1][0]

    def read_tokens(self, key: str) -> torch.Tensor:
        """(T, D) real tokens of one item in the stored dtype; the pooled vector as one token
        when tokens were not stored."""
        if not self.info.tokens:
            return self.read_pooled(key).unsqueeze(0)
        number, row = self.locate(key)
        offsets = self._offsets.get(number)
        if offsets is None:
            offsets = self._handle(number).get_tensor("offsets")
            self._offsets[number] = offsets
        start, end = int(offsets[row]), int(offsets[row + 1])
        return self._handle(number).get_slice("tokens")[start:end]

    def close(self) -> None:
        self._handles.clear()
        self._offsets.clear()

    def __getstate__(self) -> dict[str, Any]:
        """Open shard readers stay behind when the store goes to a DataLoader worker."""
        state = dict(self.__dict__)
        state["_handles"] = OrderedDict()
        state["_offsets"] = {}
        return state
