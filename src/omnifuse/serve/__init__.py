"""The HTTP API: ``create_app(ServeConfig(...))`` builds it, ``omnifuse serve`` runs it.

:class:`ServeConfig` is importable without the ``serve`` extra; :func:`create_app` needs FastAPI
(``pip install 'omnifuse[serve]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omnifuse.errors import MissingDependencyError
from omnifuse.serve.config import BatchingConfig, ServeConfig, ServeLimits

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI application for ``config`` (see :mod:`omnifuse.serve.app`)."""
    try:
        from omnifuse.serve.app import create_app as build
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in {"fastapi", "starlette", "prometheus_client"}:
            raise MissingDependencyError(f"the HTTP server ({err.name})", extra="serve") from None
        raise
    return build(config)


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module 'omnifuse.serve' has no attribute {name!r}")


__all__ = ["BatchingConfig", "ServeConfig", "ServeLimits", "create_app"]
