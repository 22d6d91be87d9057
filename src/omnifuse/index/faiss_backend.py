"""FAISS backends: ``faiss-flat`` (exact), ``faiss-hnsw`` and ``faiss-ivf`` (approximate).

Every item lives in a :class:`~omnifuse.index.table.RowTable`; FAISS holds the same rows under
their row numbers. Each ``add``/``delete`` is appended to the write-ahead log and fsync'ed before
it returns; ``flush`` writes a snapshot generation and starts an empty log. Deleted and replaced
rows become tombstones that searches exclude through a FAISS ``IDSelectorBitmap``; a flush
compacts them away once they pass ``compact_ratio`` of the rows (HNSW cannot remove vectors, so
compaction rebuilds its graph). ``faiss-ivf`` searches exactly until it holds ``train_min`` items,
then trains ``nlist`` (default √N) lists on them.

Filtered searches scan the selected rows exactly when they are few (``exact_subset_max``), which is
both faster and exact; otherwise FAISS searches with the selection as its ID selector, and any
query that comes back short is answered exactly on the selection.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.errors import CorruptInputError
from omnifuse.index.base import (
    Hit,
    IndexClosedError,
    IndexSpec,
    Matches,
    ReadOnlyIndexError,
    VectorIndex,
    check_batch,
    check_ids,
    check_k,
    check_runtime_options,
    check_vectors,
    register_backend,
    write_spec,
)
from omnifuse.index.faiss_settings import (
    RUNTIME_KEYS,
    faiss_module,
    resolve_config,
    search_parameters,
)
from omnifuse.index.files import FolderLock
from omnifuse.index.filters import Condition, parse_filter, unsatisfiable
from omnifuse.index.snapshot import (
    Snapshot,
    read_snapshot,
    remove_stale,
    wal_path,
    write_snapshot,
)
from omnifuse.index.table import RowTable, no_rows
from omnifuse.index.wal import WriteAheadLog, read_records, replay_operations


class FaissIndex(VectorIndex):
    """A FAISS index over a durable row table (see the module docstring)."""

    path: Path

    def __init__(
        self,
        path: Path,
        spec: IndexSpec,
        snapshot: Snapshot,
        folder_lock: FolderLock,
        *,
        settings: dict[str, Any],
        read_only: bool,
    ) -> None:
        self.path = path
        self.spec = spec
        self._faiss = faiss_module()
        self._settings = settings
        self._table = snapshot.table
        self._generation = snapshot.generation
        self._trained = spec.backend == "faiss-ivf" and snapshot.faiss_blob is not None
        self._index = self._load_index(snapshot.faiss_blob)
        self._folder_lock = folder_lock
        self._read_only = read_only
        self._lock = threading.RLock()
        self._wal: WriteAheadLog | None = None
        self._closed = False

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def create_new(cls, path: Path, spec: IndexSpec) -> FaissIndex:
        spec.config = resolve_config(spec.backend, spec.config)
        path.mkdir(parents=True, exist_ok=True)
        folder_lock = FolderLock(path, shared=False)
        try:
            write_spec(path, spec)
            empty = Snapshot(0, RowTable(spec.dim), None)
            index = cls(path, spec, empty, folder_lock, settings=spec.config, read_only=False)
            index._wal = WriteAheadLog(wal_path(path, 0), valid_end=0)
        except BaseException:
            folder_lock.release()
            raise
        return index

    @classmethod
    def open_existing(
        cls, path: Path, spec: IndexSpec, *, read_only: bool = False, **overrides: Any
    ) -> FaissIndex:
        check_runtime_options(overrides, RUNTIME_KEYS & set(resolve_config(spec.backend, {})))
        settings = resolve_config(spec.backend, {**spec.config, **overrides})
        folder_lock = FolderLock(path, shared=read_only)
        try:
            snapshot = read_snapshot(path, spec.dim)
            index = cls(path, spec, snapshot, folder_lock, settings=settings, read_only=read_only)
            records, valid_end = read_records(wal_path(path, snapshot.generation))
            index._replay(records)
            if not read_only:
                remove_stale(path, snapshot.generation)
                index._wal = WriteAheadLog(wal_path(path, snapshot.generation), valid_end=valid_end)
        except BaseException:
            folder_lock.release()
            raise
        return index

    def _replay(self, records: list[Any]) -> None:
        for op, args in replay_operations(records, self.dim):
            if op == "add":
                self._apply_add(*args)
            else:
                self._table.remove(args)

    # -- the FAISS structure -------------------------------------------------------------------

    @property
    def _metric_type(self) -> int:
        faiss = self._faiss
        return int(faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2)

    def _empty_index(self) -> Any:
        faiss = self._faiss
        if self.backend == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self._settings["M"], self._metric_type)
            index.hnsw.efConstruction = self._settings["ef_construction"]
            return index
        return faiss.IndexFlat(self.dim, self._metric_type)

    def _load_index(self, blob: bytes | None) -> Any:
        if blob is None:
            index = self._empty_index()
            if self._table.count:
                index.add(self._table.vectors)
        else:
            index = self._faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
            if index.ntotal != self._table.count or index.d != self.dim:
                raise CorruptInputError(
                    f"FAISS structure holds {index.ntotal} vectors of dim {index.d}, "
                    f"the rows {self._table.count} of dim {self.dim}",
                    source=self.path,
                    modality="index",
                )
        self._apply_runtime(index)
        return index

    def _apply_runtime(self, index: Any) -> None:
        if self.backend == "faiss-hnsw":
            index.hnsw.efSearch = self._settings["ef_search"]
        elif self._trained:
            index.nprobe = self._settings["nprobe"]

    def _train_ivf(self) -> None:
        """Replace the exact fallback by an IVF index trained on the live rows."""
        self._table = self._table.compacted()
        n = self._table.count
        nlist = self._settings["nlist"] or round(math.sqrt(n))
        nlist = max(1, min(nlist, n // 39))
        index = self._faiss.index_factory(self.dim, f"IVF{nlist},Flat", self._metric_type)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, size=min(n, 256 * nlist), replace=False))
        index.train(self._table.vectors[sample])
        index.add(self._table.vectors)
        self._index, self._trained = index, True
        self._apply_runtime(index)

    def _rebuild(self) -> None:
        """Compact the table and rebuild FAISS over the live rows (keeps IVF training)."""
        self._table = self._table.compacted()
        if self._trained:
            index = self._faiss.clone_index(self._index)
            index.reset()
        else:
            index = self._empty_index()
        if self._table.count:
            index.add(self._table.vectors)
        self._index = index
        self._apply_runtime(index)

    # -- writing -------------------------------------------------------------------------------

    def _writable(self) -> WriteAheadLog:
        self._check_open()
        if self._read_only or self._wal is None:
            raise ReadOnlyIndexError(f"index {str(self.path)!r} was opened read-only")
        return self._wal

    def _check_open(self) -> None:
        if self._closed:
            raise IndexClosedError(f"index {str(self.path)!r} is closed")

    def _apply_add(
        self, ids: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]]
    ) -> None:
        self._table.append(ids, vectors, metadata)
        self._index.add(vectors)
        ivf_ready = self.backend == "faiss-ivf" and not self._trained
        if ivf_ready and self._table.live >= self._settings["train_min"]:
            self._train_ivf()

    def add(
        self,
        ids: Any,
        vectors: np.ndarray,
        metadata: Any = None,
    ) -> None:
        id_list, array, meta = check_batch(ids, vectors, metadata, self.dim)
        if not id_list:
            return
        with self._lock:
            wal = self._writable()
            wal.append({"op": "add", "ids": id_list, "metadata": meta}, array.tobytes())
            self._apply_add(id_list, array, meta)
            self._flush_if_log_full()

    def delete(self, ids: Any) -> int:
        wanted = list(dict.fromkeys(check_ids(ids, unique=False)))
        with self._lock:
            wal = self._writable()
            present = [item for item in wanted if item in self._table.row_of]
            if not present:
                return 0
            wal.append({"op": "delete", "ids": present})
            removed = self._table.remove(present)
            self._flush_if_log_full()
            return removed

    def _flush_if_log_full(self) -> None:
        if self._wal is not None and self._wal.size > self._settings["wal_max_bytes"]:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            wal = self._writable()
            if wal.size == 0:
                return
            if self._table.dead > self._settings["compact_ratio"] * self._table.count:
                self._rebuild()
            self._snapshot()

    def compact(self) -> None:
        """Drop tombstones now (rebuilding an HNSW graph) and write a snapshot."""
        with self._lock:
            self._writable()
            self._rebuild()
            self._snapshot()

    def _snapshot(self) -> None:
        """Write the next generation. If that fails midway the files on disk are still
        consistent but this object may not know which generation is current, so it closes
        itself and the folder must be reopened."""
        try:
            self._write_generation()
        except BaseException:
            self._release()
            raise

    def _write_generation(self) -> None:
        generation = self._generation + 1
        structured = self.backend == "faiss-hnsw" or self._trained
        blob = self._faiss.serialize_index(self._index).tobytes() if structured else None
        write_snapshot(self.path, generation, self._table, blob)
        previous, self._wal = self._wal, WriteAheadLog(wal_path(self.path, generation))
        if previous is not None:
            previous.close()
        self._generation = generation
        remove_stale(self.path, generation)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if not self._read_only:
                    self.flush()
            finally:
                self._release()

    def _release(self) -> None:
        if self._wal is not None:
            self._wal.close()
        self._folder_lock.release()
        self._closed = True

    # -- reading -------------------------------------------------------------------------------

    @property
    def faiss_index(self) -> Any:
        """The FAISS structure that searches run on, labelled by row number: for diagnostics and
        for timing raw FAISS on the very same memory. Read it only; training and compaction
        replace it."""
        return self._index

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Change HNSW ``ef_search`` or IVF ``nprobe`` for this session (not persisted)."""
        changes = {k: v for k, v in (("ef_search", ef_search), ("nprobe", nprobe)) if v}
        with self._lock:
            self._settings = resolve_config(self.backend, {**self._settings, **changes})
            self._apply_runtime(self._index)

    def __len__(self) -> int:
        with self._lock:
            return self._table.live

    def get(self, ids: Any) -> list[dict[str, Any] | None]:
        wanted = check_ids(ids, unique=False)
        with self._lock:
            self._check_open()
            return self._table.items(wanted)

    def search(
        self, queries: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None
    ) -> list[list[Hit]]:
        with self._lock:
            return self._table.hits(*self._search_rows(queries, k, filter))

    def search_ids(
        self, queries: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None
    ) -> Matches:
        with self._lock:
            return self._table.matches(*self._search_rows(queries, k, filter))

    def _search_rows(
        self, queries: np.ndarray, k: int, filter: dict[str, Any] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row numbers) of the best ``k`` live matches per query, -1 where a query has
        fewer (no columns when nothing can match). Called with the lock held."""
        q = check_vectors(queries, self.dim, what="queries")
        k = check_k(k)
        conditions = parse_filter(filter)
        self._check_open()
        if self._table.live == 0 or unsatisfiable(conditions):
            return no_rows(len(q))
        if not conditions and self._table.dead == 0:
            return self._index.search(q, min(k, self._table.count))
        return self._search_selected(q, k, conditions)

    def _search_selected(
        self, q: np.ndarray, k: int, conditions: list[Condition]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search among the live rows that match: exactly when they are few, else through FAISS
        with an ID selector (and exactly for any query FAISS leaves short)."""
        table = self._table
        if conditions:
            mask = table.select(conditions)
            matching, bitmap = int(mask.sum()), None
        else:  # tombstones only: the live set is cached
            mask, matching, bitmap = table.live_mask(), table.live, table.live_bitmap()
        if matching == 0:
            return no_rows(len(q))
        k = min(k, matching)
        if matching <= self._settings["exact_subset_max"]:
            return self._exact_on(q, k, np.flatnonzero(mask))
        if bitmap is None:
            bitmap = np.packbits(mask, bitorder="little")
        sel = self._faiss.IDSelectorBitmap(len(mask), self._faiss.swig_ptr(bitmap))
        params = search_parameters(self._faiss, self.backend, self._trained, self._settings, sel)
        scores, labels = self._index.search(q, k, params=params)
        short = np.flatnonzero((labels < 0).any(axis=1))
        if len(short):
            scores[short], labels[short] = self._exact_on(q[short], k, np.flatnonzero(mask))
        return scores, labels

    def _exact_on(self, q: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force top-k of ``q`` among ``rows``, as (scores, row numbers)."""
        subset = np.ascontiguousarray(self._table.vectors[rows])
        scores, local = self._faiss.knn(q, subset, k, metric=self._metric_type)
        return scores, np.where(local >= 0, rows[np.maximum(local, 0)], -1)


for _name, _doc in (
    ("faiss-flat", "Exact search (FAISS IndexFlat): results equal brute force."),
    ("faiss-hnsw", "Approximate search on an HNSW graph (FAISS IndexHNSWFlat)."),
    ("faiss-ivf", "Approximate search on inverted lists (FAISS IVF-Flat), exact until trained."),
):
    register_backend(_name, FaissIndex, _doc)
