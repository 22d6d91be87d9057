"""One small registry per component kind (encoders, fusions, heads, tasks, indexes, llms, datasets).

Names are matched exactly: no selection by substring, so adding a component never changes which
one an existing name picks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from omnifuse.errors import UnknownComponentError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. ``create(name, **cfg)`` calls the factory with the config."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}

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
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownComponentError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, **cfg: Any) -> T:
        return self.get(name)(**cfg)

    def list(self) -> list[str]:
        return sorted(self._factories)

    def describe(self, name: str) -> str:
        self.get(name)
        return self._docs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._factories)
