"""Ray Data as an engine: a pool of actors, each building the worker state once.

The payloads become a Ray dataset of one row per payload; ``map_batches`` sends each row to an
actor of an :class:`~ray.data.ActorPoolStrategy` pool of ``workers`` actors, and the rows come
back in payload order (``preserve_order``), so the caller consumes them as it would a local run.
Payloads and results cross as pickled bytes in one binary column: Ray would pickle them anyway,
and Arrow then never has to guess a schema for tensors of varying shapes.

An actor that dies (killed, out of memory, its node lost) is restarted and the batch it held is
run again, up to ``retries`` times; since results are keyed by content, a batch run twice is
harmless. An error raised by the worker function is not retried: it travels back and is raised
in the caller with its own type (:mod:`omnifuse.engines.base`).

With no ``address`` (and no ``RAY_ADDRESS``) a Ray instance is started on this machine, bound to
the loopback interface, and stopped on :meth:`RayEngine.close`; with one, the engine joins that
cluster and leaves it running. Every node must have omnifuse installed, and the files the work
reads (manifest media, a sweep's feature cache, a model folder) must be at the same paths on
every node, as on a shared file system.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Generator, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from omnifuse.engines.base import Engine, P, R, SafeCall, WorkerFactory, unwrap
from omnifuse.errors import ConfigError, MissingDependencyError

RETRIES = 3
"""How many times an actor that died is restarted, and its batch rerun, before the run fails."""

PAYLOAD = "payload"
RESULT = "result"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray reads this before it picks the node's address: "0" makes a single-machine Ray use
127.0.0.1 instead of the machine's network address."""


def import_ray() -> ModuleType:
    """Ray and Ray Data, or a :class:`MissingDependencyError` naming the ``ray`` extra."""
    try:
        import ray
        import ray.data  # Ray Data ships in the ray wheel; pandas and pyarrow come with ray[data]
    except ImportError as err:
        raise MissingDependencyError(f"the Ray engine ({err.name})", extra="ray") from None
    return ray


class RayWorker:
    """One actor of the pool: the worker state is built in ``__init__``, once per actor."""

    def __init__(self, factory: WorkerFactory[Any, Any]) -> None:
        self.call = SafeCall(factory)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [
            pickle.dumps(self.call(pickle.loads(blob)), protocol=5) for blob in batch[PAYLOAD]
        ]
        out = np.empty(len(results), dtype=object)
        out[:] = results
        return {RESULT: out}


class RayEngine(Engine):
    """Ray Data ``map_batches`` over an actor pool of ``workers`` actors (see module doc)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int = 1,
        *,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        retries: int = RETRIES,
    ) -> None:
        if workers < 1:
            raise ConfigError("the Ray engine needs at least 1 worker")
        self.address = address
        self.workers = int(workers)
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.retries = retries
        self._started = False

    def connect(self) -> ModuleType:
        """Ray, initialised: joined to ``address``, or a new local instance on loopback."""
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            os.environ.setdefault(LOOPBACK_ENV, "0")
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
            self._started = True
        return ray

    def map(self, factory: WorkerFactory[P, R], payloads: Sequence[P]) -> Generator[R, None, None]:
        if not payloads:
            return
        rows = self._dataset(factory, payloads).iter_rows()
        try:
            for row in rows:
                yield unwrap(pickle.loads(row[RESULT]))
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()

    def _dataset(self, factory: WorkerFactory[Any, Any], payloads: Sequence[Any]) -> Any:
        """The lazy dataset of results; its own context keeps order and draws no progress bars
        (the caller shows its own), leaving the driver's global Ray Data context as it was."""
        ray = self.connect()
        from ray.data import ActorPoolStrategy, DataContext

        with warnings.catch_warnings():  # Ray's own defaults set settings it deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            previous = DataContext.get_current()
            context = previous.copy()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        DataContext._set_current(context)
        try:
            items = [{PAYLOAD: pickle.dumps(p, protocol=5)} for p in payloads]
            dataset = ray.data.from_items(items, override_num_blocks=len(items))
            # Restart limits are still "extra remote args" to map_batches (Ray Data's own
            # default is to restart forever), which Ray now flags as deprecated.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
                return dataset.map_batches(
                    RayWorker,
                    fn_constructor_args=(factory,),
                    batch_size=1,
                    batch_format="numpy",
                    compute=ActorPoolStrategy(size=min(self.workers, len(items))),
                    num_cpus=self.cpus_per_worker,
                    num_gpus=self.gpus_per_worker,
                    max_restarts=self.retries,
                    max_task_retries=self.retries,
                )
        finally:
            DataContext._set_current(previous)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
