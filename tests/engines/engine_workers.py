"""Worker factories the engine tests send to worker processes and Ray actors.

They live in a module of their own, not in a test file, so that spawned processes import them
by name (and quickly: nothing here imports torch); the Ray tests ship this module and
``engine_encoders`` to their actors by value (``register_pickle_by_value``), since actors do
not have the tests folder on their path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from omnifuse.errors import ConfigError


class Unpicklable(Exception):
    """An error whose constructor pickle cannot call again (it takes two arguments)."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} and {second}")


@dataclass(frozen=True)
class Square:
    """Squares numbers; raises ConfigError on ``bad`` and an unpicklable error on ``odd``."""

    bad: int = -1
    odd: int = -2

    def __call__(self) -> Callable[[int], tuple[int, int]]:
        pid = os.getpid()

        def run(x: int) -> tuple[int, int]:
            if x == self.bad:
                raise ConfigError(f"{x} is bad")
            if x == self.odd:
                raise Unpicklable("one", "two")
            return x * x, pid

        return run


@dataclass(frozen=True)
class FailingStart:
    """A worker whose state cannot be built."""

    def __call__(self) -> Callable[[int], int]:
        raise ConfigError("no state for this worker")
