"""One small registry per component kind (encoders, fusions, heads, tasks, indexes, llms, datasets).

Names are matched exactly: no selection by substring, so adding a component never changes which
one an existing name picks. A registry may name the modules that hold its built-in components;
they are imported on the first lookup, so importing a package stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from omnifuse.errors import UnknownComponentError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. ``create(name, **cfg)`` calls the factory with the config."""

    def __init__(self, kind: str, builtin_modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self.builtin_modules = tuple(builtin_modules)
        self._builtins_loaded = not self.builtin_modules
        self._factories: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}

    def load_builtins(self) -> None:
        """Import the built-in modules (once) so their ``register`` decorators run."""
        if self._builtins_loaded:
            return
        self._builtins_loaded = True  # set first: the modules may look names up while importing
        for module in self.builtin_modules:
            importlib.import_module(module)

    def register(
        self, name: str, *, doc: str | None = None
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers ``factory`` under ``name``; a duplicate name is a bug."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            first_line = (doc or factory.__doc__ or "").strip().splitlines()
            self._docs[name] = first_line[0] if first_line else ""
            return factory

        return decorate

    def get(self, name: str) -> Callable[..., T]:
        self.load_builtins()
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownComponentError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, **cfg: Any) -> T:
        return self.get(name)(**cfg)

    def list(self) -> list[str]:
        self.load_builtins()
        return sorted(self._factories)

    def describe(self, name: str) -> str:
        self.get(name)
        return self._docs[name]

    def __contains__(self, name: object) -> bool:
        self.load_builtins()
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self.load_builtins()
        return len(self._factories)
