"""Optional libraries of the ``llm`` extra, imported only when a backend needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from omnifuse.errors import MissingDependencyError


def require(module: str, what: str, *, extra: str = "llm") -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``what`` and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(what, extra=extra) from exc
