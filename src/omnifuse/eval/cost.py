"""What a fusion model costs: parameters, training time, inference latency and peak memory.

Latency is measured on cached features, so it is the cost of fusion + head (the encoders are the
same for every strategy and cost the same): per sample at batch size 1 and per batch at the
evaluation batch size, each the median of several timed repeats after a warm-up.

Peak memory is the bytes of the model's parameters and buffers plus the peak of tensor memory
allocated during one inference forward pass over a batch (activations and temporaries):

- on CUDA, ``torch.cuda.max_memory_allocated`` after resetting the peak (it includes the
  weights, which live on the device);
- on the CPU, the PyTorch profiler's allocation records (``profile_memory=True``): every
  allocation and free of the CPU allocator during the forward, in time order; their running sum
  peaks at the largest amount held at once. Process RSS would mostly measure the interpreter and
  earlier work (``ru_maxrss`` is a lifetime maximum), so it is not used.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from omnifuse.eval.inference import Batch, FusionModelLike, model_device, to_device


@dataclass
class Cost:
    """Cost profile of one model; times in milliseconds, memory in MiB."""

    parameters: int
    trainable_parameters: int
    train_seconds: float | None
    latency_ms: float
    batch_latency_ms: float
    batch_size: int
    peak_memory_mib: float | None


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def state_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def slice_batch(batch: Batch, size: int) -> Batch:
    """The first ``size`` samples of a batch."""
    features = {
        c: type(e)(e.tokens[:size], e.mask[:size], e.pooled[:size])
        for c, e in batch.features.items()
    }
    return Batch(features, batch.present[:size], batch.labels[:size])


def _median_ms(run: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _inference(
    model: FusionModelLike, batch: Batch, *, synchronize: bool = False
) -> tuple[torch.device, Callable[[], None]]:
    """``model`` in eval mode and one inference forward over ``batch`` on the model's device
    (with ``synchronize``, the call returns only when a GPU has finished it)."""
    model.eval()
    device = model_device(model)
    batch = to_device(batch, device)

    @torch.inference_mode()
    def run() -> None:
        model(batch.features, batch.present)
        if synchronize:
            _synchronize(device)

    return device, run


def latency_ms(model: FusionModelLike, batch: Batch, *, repeats: int = 20) -> float:
    """Median wall time in ms of one inference forward over ``batch``."""
    _, run = _inference(model, batch, synchronize=True)
    return _median_ms(run, repeats)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C++ profiler's start/stop lines written straight to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak_bytes(run: Callable[[], object]) -> int | None:
    """Peak of CPU tensor memory held during ``run`` from the profiler's allocation records."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    try:
        events = prof.profiler.kineto_results.events()
        records = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    except AttributeError:
        return None
    held = peak = 0
    for _, nbytes in records:
        held += nbytes
        peak = max(peak, held)
    return peak


def peak_memory_mib(model: FusionModelLike, batch: Batch) -> float | None:
    """Weights plus the peak tensor memory of one forward over ``batch`` (see module notes);
    None where the profiler cannot report allocations."""
    device, run = _inference(model, batch)
    run()  # first-call allocations (lazy init, caches) are not part of the steady state
    if device.type == "cuda":
        _synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        _synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = _cpu_peak_bytes(run)
    return None if peak is None else (state_bytes(model) + peak) / 2**20


def measure_cost(
    model: FusionModelLike,
    batch: Batch,
    *,
    train_seconds: float | None = None,
    repeats: int = 20,
) -> Cost:
    """Parameters, latency at batch size 1 and at ``batch``'s size, and peak memory."""
    total, trainable = parameter_counts(model)
    size = int(batch.present.shape[0])
    return Cost(
        parameters=total,
        trainable_parameters=trainable,
        train_seconds=train_seconds,
        latency_ms=latency_ms(model, slice_batch(batch, 1), repeats=repeats),
        batch_latency_ms=latency_ms(model, batch, repeats=max(3, repeats // 4)),
        batch_size=size,
        peak_memory_mib=peak_memory_mib(model, batch),
    )
