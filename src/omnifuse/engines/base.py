"""The executor interface for batch work, and the local engine.

Batch work (encoding a manifest, embedding items for an index, training sweep strategies) is a
list of independent payloads and a *worker factory*: a picklable callable that builds the
expensive state once per worker (an encoder, a model, a dataset in memory) and returns the
function that turns one payload into one result. An engine runs the function over the payloads
and yields the results in payload order, so the caller writes them exactly as a sequential run
would. Because every result depends only on its payload (the cache and the index key results by
content or id), a worker that dies may have its payload redone by another without changing the
outcome.

A failure raised by the function travels back as a :class:`Failure` and is raised again in the
caller with its original type where it survives pickling, so an engine changes where work runs,
never which errors the caller sees.
"""

from __future__ import annotations

import multiprocessing
import pickle
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from omnifuse.errors import OmnifuseError

P = TypeVar("P")
R = TypeVar("R")

WorkerFactory = Callable[[], Callable[[P], R]]
"""Builds a worker's state once and returns its payload → result function; must pickle."""


class WorkerError(OmnifuseError):
    """A payload failed on a worker with an error that could not travel back as itself."""


@dataclass
class Failure:
    """An error raised on a worker: the error itself when it pickles, else its description."""

    kind: str
    message: str
    remote_traceback: str
    error: BaseException | None

    @classmethod
    def of(cls, err: Exception) -> Failure:
        kept: BaseException | None = err
        try:
            if str(pickle.loads(pickle.dumps(err))) != str(err):
                kept = None
        except Exception:  # any error type may refuse to pickle or rebuild
            kept = None
        return cls(type(err).__qualname__, str(err), traceback.format_exc(), kept)

    def raise_here(self) -> None:
        if self.error is not None:
            if hasattr(self.error, "add_note"):
                self.error.add_note(f"raised on a worker:\n{self.remote_traceback}")
            raise self.error
        raise WorkerError(f"{self.kind}: {self.message}\n{self.remote_traceback}")


class SafeCall(Generic[P, R]):
    """The worker side of every engine: builds the function once, returns a :class:`Failure`
    instead of raising, so that an error is the caller's to raise and never kills the worker."""

    def __init__(self, factory: WorkerFactory[P, R]) -> None:
        self.fn: Callable[[P], R] | None = None
        self.failure: Failure | None = None
        try:
            self.fn = factory()
        except Exception as err:
            self.failure = Failure.of(err)

    def __call__(self, payload: P) -> R | Failure:
        if self.fn is None:
            assert self.failure is not None
            return self.failure
        try:
            return self.fn(payload)
        except Exception as err:
            return Failure.of(err)


def unwrap(result: R | Failure) -> R:
    """The result, or the worker's error raised in the caller."""
    if isinstance(result, Failure):
        result.raise_here()
    return result  # type: ignore[return-value]


class Engine(ABC):
    """Runs a worker function over payloads; results come back in payload order."""

    name: str
    workers: int

    @property
    def in_process(self) -> bool:
        """True when the work would run in this process: callers may then use the state they
        already built instead of a factory."""
        return False

    @abstractmethod
    def map(self, factory: WorkerFactory[P, R], payloads: Sequence[P]) -> Generator[R, None, None]:
        """The result of each payload, in order, as soon as it and those before it are done.
        Closing the iterator early stops the work still queued."""

    def close(self) -> None:  # noqa: B027 - most engines hold nothing to release
        """Release what the engine started (processes, a cluster connection)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_WORKER: dict[str, SafeCall[Any, Any]] = {}


def _start_process(factory: WorkerFactory[Any, Any], threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["call"] = SafeCall(factory)


def _call_in_process(payload: Any) -> Any:
    return _WORKER["call"](payload)


class LocalEngine(Engine):
    """This machine: in this process (one worker), or a pool of spawned processes that each
    build the worker state once, with ``threads`` torch threads each (as a Ray actor holding
    one CPU gets one), so that the workers do not fight over the cores."""

    name = "local"

    def __init__(self, workers: int = 1, *, threads: int = 1) -> None:
        self.workers = max(1, int(workers))
        self.threads = threads

    @property
    def in_process(self) -> bool:
        return self.workers == 1

    def map(self, factory: WorkerFactory[P, R], payloads: Sequence[P]) -> Generator[R, None, None]:
        if self.in_process:
            fn = factory()
            for payload in payloads:
                yield fn(payload)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=_start_process,
            initargs=(factory, self.threads),
        ) as pool:
            futures = [pool.submit(_call_in_process, p) for p in payloads]
            try:
                for future in futures:
                    yield unwrap(future.result())
            finally:
                for future in futures:
                    future.cancel()
