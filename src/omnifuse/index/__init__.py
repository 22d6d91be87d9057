"""Vector search over items of any modality: FAISS in process, Milvus for scale-out.

``create_index(name, path, dim=..., metric="ip")`` makes an index in a folder of its own;
``open_index(path)`` reopens it, the backend read from the folder's ``index.json``. Backends
(registry ``indexes``): ``faiss-flat`` (exact), ``faiss-hnsw``, ``faiss-ivf`` and ``milvus``
(Milvus Lite in the folder, or a Milvus server through ``uri=``). Every ``add`` and ``delete`` is
durable when it returns.

An index may also live on a Milvus server alone, named by the server's URI instead of a folder:
``create_index("milvus", "http://host:19530", dim=384, collection="docs")`` and
``open_index("http://host:19530", collection="docs")`` from any process that reaches the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnifuse.errors import ConfigError
from omnifuse.index.base import (
    Hit,
    IndexClosedError,
    IndexSpec,
    IndexUnavailableError,
    Matches,
    ReadOnlyIndexError,
    VectorIndex,
    backend_class,
    indexes,
    read_spec,
)
from omnifuse.index.files import IndexLockedError
from omnifuse.index.filters import parse_cli_filters, parse_filter


def create_index(
    name: str, path: Path | str, *, dim: int, metric: str = "ip", **cfg: Any
) -> VectorIndex:
    """A new, empty index of backend ``name`` in ``path`` (absent or empty). ``cfg`` holds the
    backend's options (e.g. ``M``, ``ef_search`` for HNSW; ``nlist``, ``nprobe`` for IVF;
    ``uri``, ``token`` for a Milvus server) and ``attributes``, free-form facts kept with it.
    For ``milvus``, ``path`` may be a server URI: the index then lives on the server alone, in
    the collection ``cfg["collection"]``."""
    from omnifuse.index.milvus_server import create_on_server, is_server_uri

    if is_server_uri(path):
        if name != "milvus":
            raise ConfigError(f"an index on a server URI is a milvus index, not {name!r}")
        return create_on_server(str(path), dim=dim, metric=metric, **cfg)
    return indexes.create(name, path=Path(path), dim=dim, metric=metric, **cfg)


def open_index(path: Path | str, *, read_only: bool = False, **overrides: Any) -> VectorIndex:
    """Reopen the index in ``path``. ``read_only`` shares it with other readers; ``overrides``
    change runtime settings (``ef_search``, ``nprobe``, a Milvus ``token``) for this session.
    A Milvus server URI as ``path`` opens the collection ``overrides["collection"]`` there
    (default ``omnifuse_items``)."""
    from omnifuse.index.milvus_server import is_server_uri, open_on_server

    if is_server_uri(path):
        return open_on_server(str(path), read_only=read_only, **overrides)
    folder = Path(path)
    spec = read_spec(folder)
    return backend_class(spec.backend).open_existing(folder, spec, read_only=read_only, **overrides)


def list_indexes() -> list[str]:
    return indexes.list()


__all__ = [
    "Hit",
    "IndexClosedError",
    "IndexLockedError",
    "IndexSpec",
    "IndexUnavailableError",
    "Matches",
    "ReadOnlyIndexError",
    "VectorIndex",
    "create_index",
    "indexes",
    "list_indexes",
    "open_index",
    "parse_cli_filters",
    "parse_filter",
]
