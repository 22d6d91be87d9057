"""Reading a feature cache: memory-mapped, lazy, and without ever running an encoder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.cache.keys import inline_key, text_key
from omnifuse.data.cache.sources import SourceIndex
from omnifuse.data.cache.store import CacheMeta, ColumnInfo, ColumnStore
from omnifuse.errors import ConfigError
from omnifuse.types import Encoded


class FeatureCache:
    """Features written by :func:`~omnifuse.data.cache.encode_manifest`, keyed by content.

    Columns open on first use: only shard headers are read then; tensors are read through
    memory-mapped slices when asked for. The object pickles without its open files, so it can be
    handed to ``DataLoader`` workers.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.meta = CacheMeta.read(self.root)
        self._stores: dict[str, ColumnStore] = {}
        self._sources: dict[str, SourceIndex] = {}

    @property
    def columns(self) -> list[str]:
        return list(self.meta.columns)

    def info(self, column: str) -> ColumnInfo:
        try:
            return self.meta.columns[column]
        except KeyError:
            known = ", ".join(self.meta.columns) or "none"
            raise ConfigError(f"column {column!r} is not cached here; cached: {known}") from None

    def store(self, column: str) -> ColumnStore:
        store = self._stores.get(column)
        if store is None:
            store = ColumnStore(self.root, self.info(column))
            self._stores[column] = store
        return store

    def keys(self, column: str) -> list[str]:
        return list(self.store(column).index)

    def has(self, column: str, key: str) -> bool:
        return key in self.store(column)

    def rejected(self, column: str) -> dict[str, dict[str, str]]:
        """Content keys that failed to encode, with the error type and reason."""
        return dict(self.store(column).rejected)

    def key_for(self, column: str, raw: Any) -> str:
        """The content key of a manifest value of ``column`` (text, a media path, or a value held
        inline such as a series' numbers or a table record)."""
        info = self.info(column)
        if info.kind == "text":
            return text_key(raw)
        if not isinstance(raw, str):
            return inline_key(raw, info.kind)
        sources = self._sources.get(column)
        if sources is None:
            sources = SourceIndex(self.root / info.dirname)
            self._sources[column] = sources
        return sources.key_for(str(raw), modality=info.kind)

    def tokens(self, column: str, key: str) -> torch.Tensor:
        """(T, D) float32 real tokens of one item (one token, the pooled vector, when the cache
        holds no tokens)."""
        return self.store(column).read_tokens(key).to(torch.float32)

    def get(self, column: str, key: str) -> Encoded:
        """One item as a batch of one: tokens (1, T, D), mask (1, T) all real, pooled (1, D)."""
        store = self.store(column)
        tokens = store.read_tokens(key).to(torch.float32).unsqueeze(0)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool)
        return Encoded(tokens, mask, store.read_pooled(key).unsqueeze(0))

    def pooled(self, column: str, keys: Sequence[str]) -> torch.Tensor:
        """(N, D) float32 pooled vectors of ``keys`` in order."""
        store = self.store(column)
        if not keys:
            return torch.zeros(0, store.info.dim)
        return torch.stack([store.read_pooled(key) for key in keys])

    def close(self) -> None:
        for store in self._stores.values():
            store.close()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, columns={self.columns})"
