"""Engines for batch work: where encoding, index embedding and sweep training run.

``local`` (the default) runs in this process, or in a pool of local processes with
``workers > 1``; ``ray`` runs on a Ray cluster through Ray Data, with an actor pool of
``workers`` actors (the ``ray`` extra; :mod:`omnifuse.engines.ray_engine`). Callers hand an
engine a picklable worker factory and a list of payloads and get the results back in order
(:mod:`omnifuse.engines.base`), so the files they write are the same whichever engine ran.
Ray is imported only when a Ray engine first runs work.
"""

from __future__ import annotations

from omnifuse.engines.base import Engine, LocalEngine, WorkerError, WorkerFactory
from omnifuse.errors import ConfigError

ENGINES = ("local", "ray")


def create_engine(name: str = "local", *, address: str | None = None, workers: int = 1) -> Engine:
    """The engine called ``name``; ``address`` is a Ray cluster's (``ray`` only)."""
    if name == "local":
        if address is not None:
            raise ConfigError("--address names a Ray cluster; use it with --engine ray")
        return LocalEngine(workers)
    if name == "ray":
        from omnifuse.engines.ray_engine import RayEngine

        return RayEngine(address, workers)
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "LocalEngine", "WorkerError", "WorkerFactory", "create_engine"]
