"""The ``milvus`` backend: the same index through pymilvus, embedded or on a server.

By default the data lives in ``<folder>/milvus.db`` through Milvus Lite (in process, for tests
and single machines); ``uri="http://host:19530"`` (plus ``token``, never written to disk; also
read from ``OMNIFUSE_MILVUS_TOKEN``) puts it on a Milvus server, with the folder keeping only
``index.json``. An index on a server needs no folder at all: the collection carries its own
description (the ``omnifuse.index`` collection property), so ``open_index("http://host:19530")``
reopens it from any machine, which is how several serving processes share one index.

A collection has a string primary key ``id``, a float vector ``vector`` and a JSON ``metadata``
field; filters become Milvus boolean expressions over that field. The default index type ``FLAT``
is exact; ``index_type`` / ``index_params`` / ``search_params`` choose another (HNSW, IVF_FLAT,
...). An ``add`` returns after Milvus has accepted it into its write-ahead log.

A server that does not answer raises :class:`~omnifuse.index.base.IndexUnavailableError`; the
same index object works again once the server is back (a restarted server that released the
collection, as Milvus Lite's does, has it loaded again on the next call).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.errors import ConfigError, MissingDependencyError, OmnifuseError
from omnifuse.index.base import (
    Hit,
    IndexClosedError,
    IndexSpec,
    IndexUnavailableError,
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
SPEC_PROPERTY = "omnifuse.index"
CONNECT_FAILED = 2  # pymilvus's code for a server that does not answer
COLLECTION_NOT_LOADED = 101  # Milvus's code for a search on a released collection
QUIET_LOGGERS = ("pymilvus.decorators", "pymilvus.client.connection_manager")
RECONNECT_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1_000,
}
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


def pymilvus_module() -> Any:
    try:
        import pymilvus
    except ImportError as err:
        raise MissingDependencyError("the Milvus backend (pymilvus)", extra="milvus") from err
    # Every failed call reaches the caller as an omnifuse error carrying Milvus's message;
    # pymilvus would also log each one with two tracebacks (a CLI's output, a server's log).
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return pymilvus


def connect_client(uri: str, token: str) -> Any:
    """A client of the server at ``uri`` (or of Milvus Lite for a ``.db`` path). gRPC waits
    ever longer between reconnection attempts (up to two minutes); a short ceiling lets a
    long-lived client (a serving process) find a restarted server within a second or two.

    The client owns its connection (``dedicated``): pymilvus keeps a shared connection open for
    the life of the process after its last client closes, so every index opened and closed
    would leave a gRPC channel behind, one that keeps trying to reach a stopped Milvus Lite."""
    pymilvus = pymilvus_module()
    options = {} if uri.endswith(".db") else {"grpc_options": RECONNECT_OPTIONS}
    try:
        return pymilvus.MilvusClient(uri=uri, token=token, dedicated=True, **options)
    except pymilvus.MilvusException as err:
        if err.code == CONNECT_FAILED:
            raise IndexUnavailableError(
                f"no Milvus server answers at {uri}: {err.message}"
            ) from err
        raise MilvusBackendError(f"cannot connect to Milvus at {uri}: {err.message}") from err


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
        path: Path | None,
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
        self._uri: str = settings["uri"]
        self._lite_db = None
        if not self._uri:
            if path is None:
                raise ConfigError("milvus: an index without a folder needs a server uri")
            self._lite_db = str(path / LITE_FILE)
        self._folder_lock = FolderLock(path, shared=read_only) if path and self._lite_db else None
        self._client: Any = None
        try:
            self._client = connect_client(self._uri or str(self._lite_db), token)
        except BaseException:
            self._release()
            raise

    @property
    def location(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self._uri} (collection {self._collection})"

    @classmethod
    def create_new(cls, path: Path | None, spec: IndexSpec) -> MilvusIndex:
        """A new collection, described in ``path``'s ``index.json`` when there is a folder and
        in the collection's own properties always."""
        config = dict(spec.config)
        token = str(config.pop("token", "") or os.environ.get(TOKEN_ENV, ""))
        spec.config = resolve_config(config)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        index = cls(path, spec, settings=spec.config, token=token, read_only=False)
        try:
            index._create_collection()
            if path is not None:
                write_spec(path, spec)
        except BaseException:
            index._release()
            raise
        return index

    @classmethod
    def open_existing(
        cls, path: Path | None, spec: IndexSpec, *, read_only: bool = False, **overrides: Any
    ) -> MilvusIndex:
        check_runtime_options(overrides, RUNTIME_KEYS)
        token = str(overrides.pop("token", "") or os.environ.get(TOKEN_ENV, ""))
        settings = resolve_config({**spec.config, **overrides})
        index = cls(path, spec, settings=settings, token=token, read_only=read_only)
        try:
            if not index._call("has_collection", index._collection):
                raise ConfigError(
                    f"milvus collection {index._collection!r} does not exist at {index.location}"
                )
            index._call("load_collection", index._collection)
        except BaseException:
            index._release()
            raise
        return index

    def _create_collection(self) -> None:
        pymilvus = pymilvus_module()
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
        stored = self.spec.to_dict()
        stored["config"] = {k: v for k, v in stored["config"].items() if k != "uri"}
        try:
            client.create_collection(
                name,
                schema=schema,
                index_params=params,
                consistency_level="Strong",
                properties={SPEC_PROPERTY: json.dumps(stored, ensure_ascii=False)},
            )
        except pymilvus.MilvusException as err:
            if err.code == CONNECT_FAILED:
                raise IndexUnavailableError(f"milvus at {self.location}: {err.message}") from err
            raise ConfigError(f"milvus refused the collection: {err.message}") from err

    @property
    def _milvus_metric(self) -> str:
        return "IP" if self.metric == "ip" else "L2"

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A client call with Milvus's own errors turned into omnifuse's. A collection that a
        restarted server released is loaded again and the call retried once."""
        if self._client is None:
            raise IndexClosedError(f"index {self.location!r} is closed")
        error = pymilvus_module().MilvusException
        call = getattr(self._client, method)
        try:
            return call(*args, **kwargs)
        except error as err:
            if err.code != COLLECTION_NOT_LOADED or method == "load_collection":
                raise self._failure(method, err) from err
        self._call("load_collection", self._collection)
        try:
            return call(*args, **kwargs)
        except error as err:
            raise self._failure(method, err) from err

    def _failure(self, method: str, err: Any) -> OmnifuseError:
        if err.code == CONNECT_FAILED:
            return IndexUnavailableError(
                f"the Milvus server of index {self.location!r} does not answer ({method}); "
                "is it running?"
            )
        return MilvusBackendError(f"milvus {method} failed: {err.message}")

    def _writable(self) -> None:
        if self._client is None:
            raise IndexClosedError(f"index {self.location!r} is closed")
        if self._read_only:
            raise ReadOnlyIndexError(f"index {self.location!r} was opened read-only")

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
