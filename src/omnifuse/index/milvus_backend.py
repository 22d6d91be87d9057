"""The ``milvus`` backend: the same index through pymilvus, embedded or on a server.

By default the data lives in ``<folder>/milvus.db`` through Milvus Lite (in process, for tests
and single machines); ``uri="http://host:19530"`` (plus ``token``, never written to disk; also
read from ``OMNIFUSE_MILVUS_TOKEN``) puts it on a Milvus server, with the folder keeping only
``index.json``. A collection has a string primary key ``id``, a float vector ``vector`` and a JSON
``metadata`` field; filters become Milvus boolean expressions over that field. The default index
type ``FLAT`` is exact; ``index_type`` / ``index_params`` / ``search_params`` choose another
(HNSW, IVF_FLAT, ...). An ``add`` returns after Milvus has accepted it into its write-ahead log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.errors import ConfigError, MissingDependencyError, OmnifuseError
from omnifuse.index.base import (
    Hit,
    IndexClosedError,
    IndexSpec,
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
from omnifuse.index.files import FolderLock
from omnifuse.index.filters import parse_filter, to_milvus_expr, unsatisfiable

LITE_FILE = "milvus.db"
TOKEN_ENV = "OMNIFUSE_MILVUS_TOKEN"
MAX_TOPK = 16_384
QUERY_CHUNK = 1_024
DEFAULTS: dict[str, Any] = {
    "uri": "",
    "collection": "omnifuse_items",
    "index_type": "FLAT",
    "index_params": {},
    "search_params": {},
    "batch_size": 2_000,
}
RUNTIME_KEYS = frozenset({"token", "search_params", "batch_size"})


class MilvusBackendError(OmnifuseError):
    """Milvus refused an operation; the message carries Milvus's reason."""


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as err:
        raise MissingDependencyError("the Milvus backend (pymilvus)", extra="milvus") from err
    return pymilvus


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"milvus: unknown option(s) {unknown}; known: {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **config}
    for key in ("uri", "collection", "index_type"):
        if not isinstance(merged[key], str):
            raise ConfigError(f"milvus: {key} must be a string, got {merged[key]!r}")
    for key in ("index_params", "search_params"):
        if not isinstance(merged[key], dict):
            raise ConfigError(f"milvus: {key} must be a dict, got {merged[key]!r}")
    size = merged["batch_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"milvus: batch_size must be a positive integer, got {size!r}")
    return merged


class MilvusIndex(VectorIndex):
    """A Milvus collection behind the :class:`VectorIndex` interface."""

    def __init__(
        self,
        path: Path,
        spec: IndexSpec,
        *,
        settings: dict[str, Any],
        token: str,
        read_only: bool,
    ) -> None:
        self.path = path
        self.spec = spec
        self._settings = settings
        self._read_only = read_only
        self._collection: str = settings["collection"]
        self._lite_db = None if settings["uri"] else str(path / LITE_FILE)
        self._folder_lock = FolderLock(path, shared=read_only) if self._lite_db else None
        self._client: Any = None
        try:
            uri = settings["uri"] or self._lite_db
            self._client = _pymilvus().MilvusClient(uri=uri, token=token)
        except BaseException:
            self._release()
            raise

    @classmethod
    def create_new(cls, path: Path, spec: IndexSpec) -> MilvusIndex:
        config = dict(spec.config)
        token = str(config.pop("token", "") or os.environ.get(TOKEN_ENV, ""))
        spec.config = resolve_config(config)
        path.mkdir(parents=True, exist_ok=True)
        index = cls(path, spec, settings=spec.config, token=token, read_only=False)
        try:
            index._create_collection()
            write_spec(path, spec)
        except BaseException:
            index._release()
            raise
        return index

    @classmethod
    def open_existing(
        cls, path: Path, spec: IndexSpec, *, read_only: bool = False, **overrides: Any
    ) -> MilvusIndex:
        check_runtime_options(overrides, RUNTIME_KEYS)
        token = str(overrides.pop("token", "") or os.environ.get(TOKEN_ENV, ""))
        settings = resolve_config({**spec.config, **overrides})
        index = cls(path, spec, settings=settings, token=token, read_only=read_only)
        try:
            if not index._client.has_collection(index._collection):
                raise ConfigError(f"milvus collection {index._collection!r} does not exist")
            index._client.load_collection(index._collection)
        except BaseException:
            index._release()
            raise
        return index

    def _create_collection(self) -> None:
        pymilvus = _pymilvus()
        client, name = self._client, self._collection
        if client.has_collection(name):
            raise ConfigError(f"milvus collection {name!r} exists already; choose `collection=`")
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", pymilvus.DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("metadata", pymilvus.DataType.JSON)
        params = client.prepare_index_params()
        params.add_index(
            field_name="vector",
            index_type=self._settings["index_type"],
            metric_type=self._milvus_metric,
            params=self._settings["index_params"],
        )
        try:
            client.create_collection(
                name, schema=schema, index_params=params, consistency_level="Strong"
            )
        except pymilvus.MilvusException as err:
            raise ConfigError(f"milvus refused the collection: {err.message}") from err

    @property
    def _milvus_metric(self) -> str:
        return "IP" if self.metric == "ip" else "L2"

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A client call with Milvus's own errors turned into omnifuse's."""
        if self._client is None:
            raise IndexClosedError(f"index {str(self.path)!r} is closed")
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except _pymilvus().MilvusException as err:
            raise MilvusBackendError(f"milvus {method} failed: {err.message}") from err

    def _writable(self) -> None:
        if self._client is None:
            raise IndexClosedError(f"index {str(self.path)!r} is closed")
        if self._read_only:
            raise ReadOnlyIndexError(f"index {str(self.path)!r} was opened read-only")

    def add(self, ids: Any, vectors: np.ndarray, metadata: Any = None) -> None:
        id_list, array, meta = check_batch(ids, vectors, metadata, self.dim)
        self._writable()
        size = self._settings["batch_size"]
        for start in range(0, len(id_list), size):
            rows = array[start : start + size].tolist()
            data = [
                {"id": item, "vector": row, "metadata": m}
                for item, row, m in zip(
                    id_list[start : start + size], rows, meta[start : start + size], strict=True
                )
            ]
            self._call("upsert", self._collection, data=data)

    def delete(self, ids: Any) -> int:
        wanted = list(dict.fromkeys(check_ids(ids, unique=False)))
        self._writable()
        present = [row["id"] for row in self._fetch(wanted, ["id"])]
        if present:
            self._call("delete", self._collection, ids=present)
        return len(present)

    def _fetch(self, ids: list[str], fields: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), QUERY_CHUNK):
            chunk = ids[start : start + QUERY_CHUNK]
            out.extend(self._call("get", self._collection, ids=chunk, output_fields=fields))
        return out

    def get(self, ids: Any) -> list[dict[str, Any] | None]:
        wanted = check_ids(ids, unique=False)
        rows = self._fetch(list(dict.fromkeys(wanted)), ["id", "vector", "metadata"])
        found = {
            row["id"]: {
                "id": row["id"],
                "vector": np.asarray(row["vector"], dtype=np.float32),
                "metadata": dict(row.get("metadata") or {}),
            }
            for row in rows
        }
        return [found.get(item) for item in wanted]

    def search(
        self, queries: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None
    ) -> list[list[Hit]]:
        q = check_vectors(queries, self.dim, what="queries")
        k = min(check_k(k), MAX_TOPK)
        conditions = parse_filter(filter)
        if unsatisfiable(conditions):
            return [[] for _ in range(len(q))]
        params = {"metric_type": self._milvus_metric, "params": self._settings["search_params"]}
        out: list[list[Hit]] = []
        for start in range(0, len(q), QUERY_CHUNK):
            found = self._call(
                "search",
                self._collection,
                data=q[start : start + QUERY_CHUNK].tolist(),
                limit=k,
                filter=to_milvus_expr(conditions),
                output_fields=["metadata"],
                search_params=params,
            )
            out.extend(self._hits(found))
        return out

    @staticmethod
    def _hits(found: Any) -> list[list[Hit]]:
        return [
            [
                Hit(str(hit["id"]), float(hit["distance"]), dict(hit["entity"]["metadata"] or {}))
                for hit in per_query
            ]
            for per_query in found
        ]

    def __len__(self) -> int:
        rows = self._call("query", self._collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def flush(self) -> None:
        self._writable()
        self._call("flush", self._collection)

    def close(self) -> None:
        if self._client is None:
            return
        try:
            if not self._read_only:
                self._call("flush", self._collection)
        finally:
            self._release()

    def _release(self) -> None:
        """Close the client, stop an embedded Milvus Lite server, drop the folder lock."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._lite_db is not None:
            _stop_lite_server(self._lite_db)
        if self._folder_lock is not None:
            self._folder_lock.release()
            self._folder_lock = None


def _stop_lite_server(db_path: str) -> None:
    """Milvus Lite keeps its in-process server (and the database) open until the process exits;
    stopping it on close lets another process open the folder."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(db_path)


register_backend(
    "milvus",
    MilvusIndex,
    "Milvus through pymilvus: Milvus Lite in the folder, or a server with uri= (exact by default).",
)
