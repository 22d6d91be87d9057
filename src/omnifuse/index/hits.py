"""Search results: :class:`Hit` objects with metadata, or :class:`Matches` arrays of ids and
scores. Scores follow the index's metric (see :mod:`omnifuse.index.base`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class Hit:
    """One search result: the item's id, its score (see the module docstring) and its metadata,
    a dict of the hit's own that the caller may change.

    A batch of 1,000 queries makes 10,000 hits, and copying each item's metadata then cost more
    than a fast index's search; so an index passes its stored dict with ``shared=True`` (it never
    changes a stored dict in place) and the hit copies it when ``metadata`` is first read.
    Slotted and not frozen for the same reason; compares and prints as a dataclass would."""

    __slots__ = ("_metadata", "_shared", "id", "score")
    __match_args__ = ("id", "score", "metadata")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self, id: str, score: float, metadata: dict[str, Any] | None = None, shared: bool = False
    ) -> None:
        self.id = id
        self.score = score
        self._metadata = {} if metadata is None else metadata
        self._shared = shared

    @property
    def metadata(self) -> dict[str, Any]:
        if self._shared:
            self._metadata, self._shared = dict(self._metadata), False
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._metadata, self._shared = value, False

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.id, self.score, self._metadata) == (other.id, other.score, other._metadata)

    def __repr__(self) -> str:
        fields = f"id={self.id!r}, score={self.score!r}, metadata={self._metadata!r}"
        return f"{type(self).__qualname__}({fields})"


@dataclass(frozen=True)
class Matches:
    """Search results as arrays, one row per query, best first: ``ids`` (an object array of id
    strings) and ``scores`` (float32), both ``[queries, columns]`` with at most ``k`` columns; a
    query with fewer hits has ``None`` ids and NaN scores at the end of its row.

    What :meth:`VectorIndex.search_ids` returns for callers that need ids and scores only (a
    re-ranker, an evaluation, a join against their own tables): a fast index answers a query in
    tens of microseconds, about what building its ten :class:`Hit` objects costs."""

    ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self) -> list[list[tuple[str, float]]]:
        """Per query, its ``(id, score)`` pairs without the padding."""
        return [
            [(item, float(score)) for item, score in zip(ids, scores, strict=True) if item]
            for ids, scores in zip(self.ids, self.scores, strict=True)
        ]

    @classmethod
    def from_hits(cls, hits: Sequence[Sequence[Hit]], k: int) -> Matches:
        width = min(k, max((len(row) for row in hits), default=0))
        ids = np.full((len(hits), width), None, dtype=object)
        scores = np.full((len(hits), width), np.nan, dtype=np.float32)
        for q, row in enumerate(hits):
            ids[q, : len(row)] = [hit.id for hit in row]
            scores[q, : len(row)] = [hit.score for hit in row]
        return cls(ids, scores)
