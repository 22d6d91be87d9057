"""The settings of the FAISS backends: each kind's defaults, the options a reader may change at
open time, and the check that turns a user's options into complete settings."""

from __future__ import annotations

from typing import Any

from omnifuse.errors import ConfigError, MissingDependencyError

KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "faiss-flat": {},
    "faiss-hnsw": {"M": 32, "ef_construction": 80, "ef_search": 64},
    "faiss-ivf": {"nlist": 0, "nprobe": 16, "train_min": 10_000},
}
COMMON_DEFAULTS: dict[str, Any] = {
    "wal_max_bytes": 256 << 20,
    "compact_ratio": 0.25,
    "exact_subset_max": 20_000,
}
RUNTIME_KEYS = frozenset({"ef_search", "nprobe", "exact_subset_max"})


def faiss_module() -> Any:
    try:
        import faiss
    except ImportError as err:
        raise MissingDependencyError("FAISS (pip install faiss-cpu)") from err
    return faiss


def resolve_config(backend: str, config: dict[str, Any]) -> dict[str, Any]:
    """The backend's defaults updated with ``config``; unknown keys and bad values raise."""
    defaults = {**COMMON_DEFAULTS, **KIND_DEFAULTS[backend]}
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ConfigError(f"{backend}: unknown option(s) {unknown}; known: {sorted(defaults)}")
    merged = {**defaults, **config}
    for key, value in merged.items():
        if key == "compact_ratio":
            if not isinstance(value, int | float) or not 0 < value <= 1:
                raise ConfigError(f"{backend}: compact_ratio must be in (0, 1], got {value!r}")
            continue
        least = 0 if key == "nlist" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{backend}: {key} must be an integer ≥ {least}, got {value!r}")
    return merged


def search_parameters(
    faiss: Any, backend: str, trained: bool, settings: dict[str, Any], selector: Any
) -> Any:
    """FAISS search parameters carrying an ID ``selector`` and the index's search effort."""
    if backend == "faiss-hnsw":
        return faiss.SearchParametersHNSW(sel=selector, efSearch=settings["ef_search"])
    if trained:
        return faiss.SearchParametersIVF(sel=selector, nprobe=settings["nprobe"])
    return faiss.SearchParameters(sel=selector)
