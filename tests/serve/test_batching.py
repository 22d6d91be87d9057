"""The dynamic batcher: concurrent items share a run, a lone item never waits, order and errors
are kept per item, a full queue refuses (503) and a slow run times out (504)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from omnifuse.serve.batching import BatchTimeout, DynamicBatcher, Overloaded
from omnifuse.serve.config import BatchingConfig

T = TypeVar("T")


class Recorder:
    """A batch function that squares numbers, sleeping ``delay`` per batch, and records sizes."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sizes: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, items: list[int]) -> Sequence[int]:
        self.sizes.append(len(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return [x * x for x in items]


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


def test_concurrent_requests_share_batches_and_keep_their_order() -> None:
    recorder = Recorder(delay=0.02)

    async def main() -> list[list[int]]:
        batcher = DynamicBatcher("sq", recorder, BatchingConfig(max_batch=16, max_wait_ms=5))
        try:
            return await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(24)))
        finally:
            await batcher.close()

    results = run(main)
    assert results == [[i * i, (i + 100) ** 2] for i in range(24)]
    assert sum(recorder.sizes) == 48
    assert max(recorder.sizes) == 16  # capped at max_batch
    assert len(recorder.sizes) <= 5  # 48 items in a handful of runs, not 24 or 48
    assert all(name.startswith("batch-sq") for name in recorder.threads)


def test_a_lone_item_runs_at_once_without_waiting_for_company() -> None:
    recorder = Recorder()

    async def main() -> float:
        batcher = DynamicBatcher("solo", recorder, BatchingConfig(max_wait_ms=500))
        try:
            await batcher.submit([1])  # warm the worker thread
            started = time.perf_counter()
            for i in range(5):
                assert await batcher.submit([i]) == [i * i]
            return (time.perf_counter() - started) / 5
        finally:
            await batcher.close()

    per_item = run(main)
    assert per_item < 0.1  # far below the 500 ms max_wait: a lone client never waits
    assert recorder.sizes == [1] * 6


def test_disabled_batching_runs_items_one_at_a_time() -> None:
    recorder = Recorder(delay=0.005)

    async def main() -> list[list[int]]:
        batcher = DynamicBatcher("off", recorder, BatchingConfig(enabled=False))
        try:
            return await asyncio.gather(*(batcher.submit([i]) for i in range(10)))
        finally:
            await batcher.close()

    assert run(main) == [[i * i] for i in range(10)]
    assert recorder.sizes == [1] * 10


def test_an_error_in_a_batch_reaches_every_request_in_it_and_the_worker_goes_on() -> None:
    calls = {"n": 0}

    def flaky(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("model failed")
        return items

    async def main() -> list[object]:
        batcher = DynamicBatcher("flaky", flaky, BatchingConfig())
        try:
            first = await asyncio.gather(batcher.submit([1, 2]), return_exceptions=True)
            second = await batcher.submit([3])
            return [*first, second]
        finally:
            await batcher.close()

    first, second = run(main)
    assert isinstance(first, RuntimeError) and str(first) == "model failed"
    assert second == [3]


def test_a_wrong_number_of_outputs_is_an_error_not_a_silent_mismatch() -> None:
    async def main() -> None:
        batcher = DynamicBatcher("short", lambda items: items[:-1], BatchingConfig())
        try:
            await batcher.submit([1, 2, 3])
        finally:
            await batcher.close()

    with pytest.raises(RuntimeError, match="batch of 3 gave 2 outputs"):
        run(main)


def test_a_full_queue_is_refused_as_overloaded() -> None:
    recorder = Recorder(delay=0.2)

    async def main() -> None:
        batcher = DynamicBatcher("busy", recorder, BatchingConfig(max_queue=4, max_batch=1))
        try:
            running = asyncio.ensure_future(batcher.submit([1, 2, 3, 4]))
            await asyncio.sleep(0.05)  # the first item runs, three wait
            with pytest.raises(Overloaded, match="overloaded"):
                await batcher.submit([5, 6])
            assert await running == [1, 4, 9, 16]
        finally:
            await batcher.close()

    run(main)


def test_a_slow_batch_times_out_and_later_items_still_run() -> None:
    recorder = Recorder(delay=0.3)

    async def main() -> list[int]:
        batcher = DynamicBatcher("slow", recorder, BatchingConfig(timeout_s=0.05))
        try:
            with pytest.raises(BatchTimeout, match=r"did not answer within 0\.05 s"):
                await batcher.submit([1])
            recorder.delay = 0.0
            await asyncio.sleep(0.35)  # the timed-out run finishes; its result is dropped
            return await batcher.submit([7])
        finally:
            await batcher.close()

    assert run(main) == [49]


def test_batching_settings_are_checked() -> None:
    from omnifuse.errors import ConfigError

    with pytest.raises(ConfigError, match=r"batching\.max_batch"):
        BatchingConfig(max_batch=0)
    with pytest.raises(ConfigError, match=r"batching\.max_wait_ms"):
        BatchingConfig(max_wait_ms=-1)
