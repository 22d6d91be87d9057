"""The rows behind a FAISS index: ids, vectors and metadata, with tombstones and filter columns.

Row numbers are the labels FAISS knows, so a deleted or replaced row stays as a tombstone (its id
and metadata set to None) until :meth:`RowTable.compacted` renumbers the live rows. A stored
metadata dict is never changed in place, so hits may share it. Filters are evaluated on columns
built per metadata field on first use (type code, numeric value, string value), so a filtered
search scans numpy arrays rather than dicts.

Search results turn into :class:`~omnifuse.index.base.Hit` objects here, in bulk (see
:meth:`RowTable.hits`): a batch of 1,000 queries makes 10,000 hits, and their construction is the
one part of a search that FAISS does not do.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import Any

import numpy as np

from omnifuse.index.filters import Condition
from omnifuse.index.hits import Hit, Matches

MISSING, NUMBER, STRING, OTHER = range(4)


@dataclass
class Column:
    """One metadata field over all rows: a kind code, the numeric value (booleans as 1 and 0,
    matching :mod:`omnifuse.index.filters`) and the string value."""

    kind: np.ndarray
    number: np.ndarray
    text: np.ndarray

    @classmethod
    def build(cls, field: str, metadata: Sequence[dict[str, Any] | None]) -> Column:
        n = len(metadata)
        kind = np.zeros(n, dtype=np.int8)
        number = np.full(n, np.nan)
        text = np.full(n, None, dtype=object)
        for row, meta in enumerate(metadata):
            if meta is None or field not in meta:
                continue
            value = meta[field]
            if isinstance(value, int | float):
                kind[row], number[row] = NUMBER, float(value)
            elif isinstance(value, str):
                kind[row], text[row] = STRING, value
            else:
                kind[row] = OTHER
        return cls(kind, number, text)

    def equal(self, value: Any) -> np.ndarray:
        if isinstance(value, str):
            return (self.kind == STRING) & (self.text == value)
        return (self.kind == NUMBER) & (self.number == float(value))

    def holds(self, condition: Condition) -> np.ndarray:
        if condition.op == "$eq":
            return self.equal(condition.value)
        if condition.op == "$in":
            mask = np.zeros(len(self.kind), dtype=bool)
            for value in condition.value:
                mask |= self.equal(value)
            return mask
        bound = float(condition.value)
        with np.errstate(invalid="ignore"):
            compare = {
                "$gt": self.number > bound,
                "$gte": self.number >= bound,
                "$lt": self.number < bound,
                "$lte": self.number <= bound,
            }[condition.op]
        return (self.kind == NUMBER) & compare


class RowTable:
    """Append-only rows with tombstones; ``row_of`` maps each live id to its row."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self.count = 0
        self.ids: list[str | None] = []
        self._id_array = np.empty(0, dtype=object)
        self.metadata: list[dict[str, Any] | None] = []
        self.row_of: dict[str, int] = {}
        self._columns: dict[str, Column] = {}
        self._live_mask: np.ndarray | None = None
        self._live_bits: np.ndarray | None = None

    @classmethod
    def from_rows(
        cls,
        vectors: np.ndarray,
        ids: Sequence[str | None],
        metadata: Sequence[dict[str, Any] | None],
    ) -> RowTable:
        table = cls(vectors.shape[1])
        table._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        table.count = len(ids)
        table.ids = list(ids)
        table._id_array = np.empty(len(ids), dtype=object)
        table._id_array[:] = table.ids
        table.metadata = list(metadata)
        table.row_of = {item: row for row, item in enumerate(table.ids) if item is not None}
        return table

    @property
    def vectors(self) -> np.ndarray:
        """All rows' vectors, tombstones included (a view; do not keep it across appends)."""
        return self._vectors[: self.count]

    @property
    def live(self) -> int:
        return len(self.row_of)

    @property
    def dead(self) -> int:
        return self.count - self.live

    def _changed(self) -> None:
        self._columns.clear()
        self._live_mask = None
        self._live_bits = None

    def _reserve(self, extra: int) -> None:
        needed = self.count + extra
        if needed <= len(self._vectors):
            return
        capacity = max(needed, 2 * len(self._vectors), 1024)
        grown = np.empty((capacity, self.dim), dtype=np.float32)
        grown[: self.count] = self._vectors[: self.count]
        self._vectors = grown
        ids = np.full(capacity, None, dtype=object)
        ids[: self.count] = self._id_array[: self.count]
        self._id_array = ids

    def remove(self, ids: Sequence[str]) -> int:
        """Tombstone the rows of ``ids``; returns how many were live."""
        removed = 0
        for item in ids:
            row = self.row_of.pop(item, None)
            if row is not None:
                self.ids[row] = None
                self._id_array[row] = None
                self.metadata[row] = None
                removed += 1
        if removed:
            self._changed()
        return removed

    def append(
        self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[dict[str, Any]]
    ) -> None:
        """Add rows at the end; an id already live is tombstoned first (upsert)."""
        self.remove(ids)
        self._reserve(len(ids))
        start = self.count
        self._vectors[start : start + len(ids)] = vectors
        self.ids.extend(ids)
        self._id_array[start : start + len(ids)] = ids
        self.metadata.extend(metadata)
        for offset, item in enumerate(ids):
            self.row_of[item] = start + offset
        self.count += len(ids)
        self._changed()

    def live_mask(self) -> np.ndarray:
        if self._live_mask is None or len(self._live_mask) != self.count:
            mask = np.zeros(self.count, dtype=bool)
            mask[list(self.row_of.values())] = True
            self._live_mask = mask
        return self._live_mask

    def live_bitmap(self) -> np.ndarray:
        """The live mask packed as FAISS ``IDSelectorBitmap`` reads it (bit i of byte i // 8)."""
        if self._live_bits is None:
            self._live_bits = np.packbits(self.live_mask(), bitorder="little")
        return self._live_bits

    def column(self, field: str) -> Column:
        found = self._columns.get(field)
        if found is None:
            found = self._columns[field] = Column.build(field, self.metadata)
        return found

    def select(self, conditions: Sequence[Condition]) -> np.ndarray:
        """Boolean mask of the live rows that satisfy every condition."""
        mask = self.live_mask().copy()
        for condition in conditions:
            mask &= self.column(condition.field).holds(condition)
        return mask

    def hits(self, scores: np.ndarray, rows: np.ndarray) -> list[list[Hit]]:
        """FAISS output (one row of scores and row numbers per query, -1 for none) → hits, in
        FAISS's order; live rows always have metadata, which each hit shares until it is read
        (see :class:`~omnifuse.index.base.Hit`).

        Each column is gathered for all queries at once by C-level ``map`` calls rather than a
        Python loop per hit. The cyclic garbage collector is paused meanwhile: otherwise the
        thousands of new objects set off collections that walk every object in the process
        (hundreds of thousands once torch is imported), which cost more than the search itself
        on fast indexes. It is resumed before returning; the new hits are collected as usual."""
        n, k = rows.shape
        if k == 0:
            return [[] for _ in range(n)]
        if rows.min(initial=0) >= 0:
            flat, values, counts = rows.ravel().tolist(), scores.ravel().tolist(), None
        else:
            found = rows >= 0
            flat, values = rows[found].tolist(), scores[found].tolist()
            counts = found.sum(axis=1).tolist()
        ids: list[Any] = self.ids  # live rows only, so never a tombstone's None
        metadata: list[Any] = self.metadata
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            stored = map(metadata.__getitem__, flat)
            made = list(map(Hit, map(ids.__getitem__, flat), values, stored, repeat(True)))
            if counts is None:  # k ≥ 1: a search asks for at least one hit
                return [made[start : start + k] for start in range(0, n * k, k)]
            ends = accumulate(counts)
            return [made[end - count : end] for end, count in zip(ends, counts, strict=True)]
        finally:
            if paused:
                gc.enable()

    def items(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Per id: ``{"id", "vector", "metadata"}`` (copies) or None when not live."""
        out: list[dict[str, Any] | None] = []
        for item in ids:
            row = self.row_of.get(item)
            if row is None:
                out.append(None)
                continue
            meta = self.metadata[row] or {}
            out.append({"id": item, "vector": self.vectors[row].copy(), "metadata": dict(meta)})
        return out

    def matches(self, scores: np.ndarray, rows: np.ndarray) -> Matches:
        """FAISS output → :class:`Matches`: the ids gathered by one numpy take over an object
        array kept beside ``ids`` (row -1, FAISS's "none", reads as None with a NaN score)."""
        ids = self._id_array[rows]
        found = rows >= 0
        if not found.all():
            ids = np.where(found, ids, None)
            scores = np.where(found, scores, np.float32(np.nan))
        return Matches(ids, scores.astype(np.float32, copy=False))

    def compacted(self) -> RowTable:
        """A new table holding only the live rows, in their current order."""
        rows = np.flatnonzero(self.live_mask())
        return RowTable.from_rows(
            self.vectors[rows],
            [self.ids[r] for r in rows],
            [self.metadata[r] for r in rows],
        )


def no_rows(queries: int) -> tuple[np.ndarray, np.ndarray]:
    """A search result with no columns: nothing can match."""
    return np.empty((queries, 0), dtype=np.float32), np.empty((queries, 0), dtype=np.int64)
