"""The vector-index interface every backend implements, and the checks every backend shares.

An index lives in a folder whose ``index.json`` names the backend, the dimension, the metric and
the backend's config, so :func:`~omnifuse.index.open_index` can reopen it without being told what
it is. Items are string ids with a float32 vector and a JSON metadata dict; adding an id that is
already present replaces it (upsert).

Scores: for ``metric="ip"`` a hit's score is the inner product (higher is closer); for
``metric="l2"`` it is the squared Euclidean distance (lower is closer). Hits come best first.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from omnifuse.errors import (
    ConfigError,
    InputNotFoundError,
    InvalidValueError,
    ManifestError,
    OmnifuseError,
    ServiceUnavailableError,
)
from omnifuse.fileio import write_bytes_atomic
from omnifuse.index.files import LOCK_FILE
from omnifuse.index.hits import Hit, Matches
from omnifuse.registry import Registry

Metric = Literal["ip", "l2"]
METRICS: tuple[str, ...] = ("ip", "l2")
SPEC_FILE = "index.json"
SPEC_FORMAT = 1
MAX_ID_BYTES = 512

indexes: Registry[VectorIndex] = Registry(
    "indexes",
    builtin_modules=("omnifuse.index.faiss_backend", "omnifuse.index.milvus_backend"),
)


class IndexClosedError(OmnifuseError):
    """The index was used after ``close()``."""


class ReadOnlyIndexError(OmnifuseError):
    """A write to an index opened with ``read_only=True``."""


class IndexUnavailableError(ServiceUnavailableError):
    """The server that holds the index (a Milvus server) does not answer."""


@dataclass
class IndexSpec:
    """What ``index.json`` holds: enough to reopen the folder with the right backend."""

    backend: str
    dim: int
    metric: str
    config: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "backend": self.backend,
            "dim": self.dim,
            "metric": self.metric,
            "config": self.config,
            "attributes": self.attributes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: object) -> IndexSpec:
        try:
            spec = cls(
                backend=str(data["backend"]),
                dim=int(data["dim"]),
                metric=str(data["metric"]),
                config=dict(data.get("config") or {}),
                attributes=dict(data.get("attributes") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(f"malformed index description: {err}", source=source) from err
        check_dim_metric(spec.dim, spec.metric)
        return spec


def spec_path(path: Path) -> Path:
    return Path(path) / SPEC_FILE


def read_spec(path: Path | str) -> IndexSpec:
    """The ``index.json`` of an index folder; a folder without one is not an index."""
    file = spec_path(Path(path))
    if not file.is_file():
        raise InputNotFoundError(f"no index here (missing {SPEC_FILE})", source=path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ManifestError(f"unreadable index description: {err}", source=file) from err
    if not isinstance(data, dict):
        raise ManifestError("index description is not a JSON object", source=file)
    return IndexSpec.from_dict(data, file)


def write_spec(path: Path, spec: IndexSpec) -> None:
    text = json.dumps(spec.to_dict(), indent=2, ensure_ascii=False) + "\n"
    write_bytes_atomic(spec_path(path), text.encode("utf-8"), durable=True)


def check_dim_metric(dim: int, metric: str) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ConfigError(f"dim must be a positive integer, got {dim!r}")
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {METRICS}, got {metric!r}")


class VectorIndex(ABC):
    """A persistent collection of (id, vector, metadata) items searchable by vector similarity.

    Subclasses implement the storage; the validation of ids, vectors and metadata lives here so
    every backend accepts and rejects exactly the same inputs.
    """

    spec: IndexSpec
    path: Path | None
    """The index folder; None for an index that lives on a server alone."""

    @property
    def location(self) -> str:
        """Where the index lives, for messages: its folder, or a server and collection."""
        return str(self.path)

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def attributes(self) -> dict[str, Any]:
        """Free-form facts stored with the index (e.g. which model made its vectors)."""
        return dict(self.spec.attributes)

    @classmethod
    @abstractmethod
    def create_new(cls, path: Path, spec: IndexSpec) -> VectorIndex:
        """Make a new, empty index in ``path`` (which holds no index yet) and open it."""

    @classmethod
    @abstractmethod
    def open_existing(
        cls, path: Path, spec: IndexSpec, *, read_only: bool = False, **overrides: Any
    ) -> VectorIndex:
        """Open the index described by ``spec``; ``overrides`` change runtime settings only."""

    @abstractmethod
    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadata: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Insert items; an id already present is replaced. Durable when this returns."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> int:
        """Remove items by id; returns how many were present. Unknown ids are ignored."""

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None
    ) -> list[list[Hit]]:
        """The ``k`` best items for each query row (fewer if fewer match), best first."""

    def search_ids(
        self, queries: np.ndarray, k: int = 10, filter: dict[str, Any] | None = None
    ) -> Matches:
        """What :meth:`search` finds, as id and score arrays without metadata (see
        :class:`Matches`). Backends whose search yields row numbers override this to skip
        building hits."""
        return Matches.from_hits(self.search(queries, k, filter), check_k(k))

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Per id: ``{"id", "vector", "metadata"}`` or None when absent, in the order asked."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of live items."""

    @abstractmethod
    def flush(self) -> None:
        """Write a compact snapshot so reopening is fast; adds are already durable without it."""

    @abstractmethod
    def close(self) -> None:
        """Release files, locks and connections; the index is unusable afterwards."""

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.location!r}, backend={self.backend!r}, dim={self.dim})"


def check_runtime_options(overrides: Mapping[str, Any], runtime: Collection[str]) -> None:
    """Reopening an index may change only its ``runtime`` options (search effort, batch sizes);
    everything else was fixed when the index was built."""
    fixed = sorted(set(overrides) - set(runtime))
    if fixed:
        raise ConfigError(
            f"{fixed} cannot change after creation; runtime options: {sorted(runtime)}"
        )


BACKENDS: dict[str, type[VectorIndex]] = {}


def register_backend(name: str, cls: type[VectorIndex], doc: str) -> None:
    """Register ``cls`` under ``name`` in ``indexes``; the registry's factory creates a new index:
    ``indexes.create(name, path=..., dim=..., metric="ip", **config)``."""

    def create(
        path: Path | str,
        *,
        dim: int,
        metric: str = "ip",
        attributes: dict[str, Any] | None = None,
        **config: Any,
    ) -> VectorIndex:
        check_dim_metric(dim, metric)
        folder = Path(path)
        if spec_path(folder).exists():
            raise ConfigError(f"{str(folder)!r} already holds an index; open it with open_index")
        if folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir()):
            raise ConfigError(f"{str(folder)!r} is not empty; an index needs a folder of its own")
        spec = IndexSpec(name, dim, metric, dict(config), dict(attributes or {}))
        return cls.create_new(folder, spec)

    indexes.register(name, doc=doc)(create)
    BACKENDS[name] = cls


def backend_class(name: str) -> type[VectorIndex]:
    indexes.get(name)  # loads the built-in backends; unknown names raise UnknownComponentError
    return BACKENDS[name]


def check_ids(ids: Sequence[str], *, unique: bool = True) -> list[str]:
    """Ids as a list of non-empty strings of at most ``MAX_ID_BYTES`` UTF-8 bytes."""
    if isinstance(ids, str | bytes):
        raise InvalidValueError("ids must be a sequence of strings, not one string", source="ids")
    out = list(ids)
    for item in out:
        if not isinstance(item, str) or not item:
            raise InvalidValueError(f"an id must be a non-empty string, got {item!r}", source="ids")
        if len(item.encode("utf-8")) > MAX_ID_BYTES:
            raise InvalidValueError(
                f"id longer than {MAX_ID_BYTES} bytes: {item[:40]!r}…", source="ids"
            )
    if unique and len(set(out)) != len(out):
        seen: set[str] = set()
        for item in out:
            if item in seen:
                raise InvalidValueError(f"id {item!r} appears twice in one call", source="ids")
            seen.add(item)
    return out


def check_vectors(vectors: Any, dim: int, *, what: str = "vectors") -> np.ndarray:
    """A C-contiguous float32 [N, dim] array of finite values (a 1-D vector counts as one row)."""
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise InvalidValueError(f"not a numeric array: {err}", source=what) from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidValueError(
            f"expected shape [N, {dim}], got {list(np.shape(vectors))}", source=what
        )
    if not np.isfinite(array).all():
        raise InvalidValueError("contains NaN or infinite values", source=what)
    return np.ascontiguousarray(array)


def check_metadata(metadata: Sequence[dict[str, Any]] | None, n: int) -> list[dict[str, Any]]:
    """One JSON-serialisable dict per item, normalised through JSON so what is stored is exactly
    what a reopened index returns (tuples become lists, keys become strings)."""
    if metadata is None:
        return [{} for _ in range(n)]
    items = list(metadata)
    if len(items) != n:
        raise InvalidValueError(f"{len(items)} metadata dicts for {n} vectors", source="metadata")
    for i, item in enumerate(items):
        if item is not None and not isinstance(item, dict):
            raise InvalidValueError(f"item {i}: metadata must be a dict", source="metadata")
    try:  # one JSON round trip for the batch; per item only to name the one that fails
        out: list[dict[str, Any]] = json.loads(dump_json([item or {} for item in items]))
    except (TypeError, ValueError):
        for i, item in enumerate(items):
            try:
                dump_json(item)
            except (TypeError, ValueError) as err:
                raise InvalidValueError(
                    f"item {i}: not JSON-serialisable: {err}", source="metadata"
                ) from None
        raise
    return out


def dump_json(value: Any) -> str:
    return json.dumps(value, allow_nan=False, ensure_ascii=False)


def check_batch(
    ids: Sequence[str], vectors: Any, metadata: Sequence[dict[str, Any]] | None, dim: int
) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """Validate one ``add`` call as a whole before anything is written."""
    id_list = check_ids(ids)
    array = check_vectors(vectors, dim)
    if array.shape[0] != len(id_list):
        raise InvalidValueError(f"{len(id_list)} ids for {array.shape[0]} vectors", source="ids")
    return id_list, array, check_metadata(metadata, len(id_list))


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidValueError(f"k must be a positive integer, got {k!r}", source="k")
    return int(k)
