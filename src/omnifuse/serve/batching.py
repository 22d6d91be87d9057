"""Dynamic batching: concurrent requests to one component share a forward pass.

Each component (an encoder, a fusion model) gets a :class:`DynamicBatcher`: requests put their
items on an asyncio queue and await futures; one worker task takes the first waiting item, adds
everything already queued (up to ``max_batch``), and runs the batch on its own worker thread, so
the event loop keeps accepting requests while the model runs. Items queued during a run form the
next batch, which is what makes batching pay off under load.

Waiting for stragglers (``max_wait_ms``) only happens when requests are evidently arriving
concurrently (the previous batch or the queue held more than one item): a lone client never
waits, so batching costs it no latency. When nothing is running or queued, a request's items
go straight to the worker thread, skipping the queue; whatever arrives meanwhile queues up and
forms the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from omnifuse.serve.config import BatchingConfig

In = TypeVar("In")
Out = TypeVar("Out")


class Overloaded(Exception):
    """The component's queue is full: the server answers 503 and the client should retry."""


class BatchTimeout(Exception):
    """An item waited or ran longer than the batcher's timeout: the server answers 504."""


class BatchObserver(Protocol):
    """Receives batch sizes, run times and queue depths (for ``/metrics``)."""

    def batch_ran(self, component: str, size: int, seconds: float) -> None: ...

    def queue_depth(self, component: str, depth: int) -> None: ...


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]


class DynamicBatcher(Generic[In, Out]):
    """Runs ``run(items) -> outputs`` (same length, same order) on batches of queued items.

    ``run`` executes on a dedicated thread; an exception it raises is set on every item of that
    batch. Create and use a batcher inside one running event loop.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[list[In]], Sequence[Out]],
        settings: BatchingConfig,
        observer: BatchObserver | None = None,
    ) -> None:
        self.name = name
        self.run = run
        self.settings = settings
        self.max_batch = int(settings.max_batch) if settings.enabled else 1
        self.max_wait_s = settings.max_wait_ms / 1000.0 if settings.enabled else 0.0
        self.observer = observer
        self._queue: asyncio.Queue[_Pending[In, Out]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._worker: asyncio.Task[None] | None = None
        self._running = asyncio.Lock()
        self._holding = False  # the worker has taken an item off the queue
        self._last_size = 0
        self.batches_run = 0
        self.items_run = 0

    @property
    def depth(self) -> int:
        """Items waiting (not counting the batch that is running)."""
        return self._queue.qsize()

    async def submit(self, items: Sequence[In]) -> list[Out]:
        """Queue ``items`` (one request's worth) and wait for their outputs, in order."""
        if not items:
            return []
        if self.depth + len(items) > self.settings.max_queue:
            raise Overloaded(
                f"{self.name} is overloaded ({self.depth} items waiting); retry shortly"
            )
        if self._idle() and len(items) <= self.max_batch:
            return await self._run_directly(items)
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        pending = [_Pending[In, Out](item, loop.create_future()) for item in items]
        for entry in pending:
            self._queue.put_nowait(entry)
        self._observe_depth()
        futures = [entry.future for entry in pending]
        try:
            return list(
                await asyncio.wait_for(asyncio.gather(*futures), timeout=self.settings.timeout_s)
            )
        except asyncio.TimeoutError:
            raise BatchTimeout(
                f"{self.name} did not answer within {self.settings.timeout_s:g} s"
            ) from None
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()

    def _idle(self) -> bool:
        return not self._running.locked() and not self._holding and self._queue.empty()

    async def _run_directly(self, items: Sequence[In]) -> list[Out]:
        """Run one request's items at once (the batcher was idle), holding off the worker."""
        loop = asyncio.get_running_loop()
        async with self._running:
            started = time.perf_counter()
            work = loop.run_in_executor(self._executor, self.run, list(items))
            try:
                outputs = await asyncio.wait_for(work, timeout=self.settings.timeout_s)
            except asyncio.TimeoutError:
                raise BatchTimeout(
                    f"{self.name} did not answer within {self.settings.timeout_s:g} s"
                ) from None
            finally:
                self._record(len(items), time.perf_counter() - started)
                self._last_size = len(items)
        if len(outputs) != len(items):
            raise RuntimeError(f"{self.name}: batch of {len(items)} gave {len(outputs)} outputs")
        return list(outputs)

    async def close(self) -> None:
        """Stop the worker and its thread; waiting items get cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._serve(), name=f"batcher-{self.name}"
            )

    async def _serve(self) -> None:
        while True:
            first = await self._queue.get()
            self._holding = True
            try:
                async with self._running:  # a direct run in progress finishes first
                    await self._run_batch(await self._collect(first))
            finally:
                self._holding = False

    async def _run_batch(self, batch: list[_Pending[In, Out]]) -> None:
        live = [entry for entry in batch if not entry.future.done()]
        self._observe_depth()
        if not live:
            return
        started = time.perf_counter()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.run, [entry.item for entry in live]
            )
            if len(outputs) != len(live):
                raise RuntimeError(f"{self.name}: batch of {len(live)} gave {len(outputs)} outputs")
        except Exception as err:  # every waiting request learns what went wrong
            for entry in live:
                if not entry.future.done():
                    entry.future.set_exception(err)
            return
        finally:
            self._record(len(live), time.perf_counter() - started)
        for entry, output in zip(live, outputs, strict=True):
            if not entry.future.done():
                entry.future.set_result(output)

    async def _collect(self, first: _Pending[In, Out]) -> list[_Pending[In, Out]]:
        """The next batch: the first waiting item, what is queued behind it, and (under
        concurrent load) what arrives within ``max_wait_s``."""
        batch = [first]
        self._drain(batch)
        concurrent = len(batch) > 1 or self._last_size > 1
        if concurrent and self.max_wait_s > 0 and len(batch) < self.max_batch:
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
                self._drain(batch)
        self._last_size = len(batch)
        return batch

    def _drain(self, batch: list[_Pending[In, Out]]) -> None:
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    def _record(self, size: int, seconds: float) -> None:
        self.batches_run += 1
        self.items_run += size
        if self.observer is not None:
            self.observer.batch_ran(self.name, size, seconds)

    def _observe_depth(self) -> None:
        if self.observer is not None:
            self.observer.queue_depth(self.name, self.depth)
