"""Data-parallel training across processes started by ``torchrun`` (``torch.distributed.run``).

The training loop asks this module who it is (:func:`current`): under ``torchrun`` every
process trains the same model on its own slice of each global batch, and the gradients are
summed across processes before every optimizer step, so N processes take the steps one process
would take on the same global batches (gloo on CPU, NCCL on CUDA). Work that must happen once —
building a dataset, filling the feature cache, writing files — runs on rank 0 first
(:func:`main_first`, :func:`is_main`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_TIMEOUT_S = 60.0
"""How long a collective waits for a silent peer before the job fails (``OMNIFUSE_DIST_TIMEOUT``
overrides it): a rank that died ends the job with an error instead of a hang."""


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` data-parallel processes."""

    rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def slice(self, indices: Sequence[int]) -> Sequence[int]:
        """This rank's contiguous part of a global batch (sizes differ by at most one)."""
        size, extra = divmod(len(indices), self.world)
        start = self.rank * size + min(self.rank, extra)
        return indices[start : start + size + (1 if self.rank < extra else 0)]


def launched() -> bool:
    """Whether ``torchrun`` started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device | None = None) -> Shard:
    """Join the process group ``torchrun`` describes in the environment (once); gloo on CPU,
    NCCL when the device is CUDA. Outside ``torchrun`` this does nothing."""
    import torch.distributed as dist

    if not launched():
        return Shard()
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        timeout = float(os.environ.get("OMNIFUSE_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return current()


def current() -> Shard:
    """This process's shard: (0, 1) unless a process group is running."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard()


def is_main() -> bool:
    """Rank 0, or a process on its own: the one that writes files and prints progress."""
    return current().rank == 0


def barrier() -> None:
    import torch.distributed as dist

    if current().distributed:
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block, then the others do (finding its work done: the dataset built,
    the cache filled), so no two processes write the same files at once."""
    if not current().distributed:
        yield
        return
    if is_main():
        yield
        barrier()
    else:
        barrier()
        yield


def sum_gradients(parameters: Sequence[torch.Tensor]) -> None:
    """Sum every parameter's gradient across processes, in one flat all-reduce (a parameter
    without a gradient on some rank counts as zeros there)."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for parameter, grad in zip(parameters, grads, strict=True):
        count = grad.numel()
        parameter.grad = flat[offset : offset + count].view_as(grad).clone()
        offset += count


def sum_across(value: torch.Tensor) -> torch.Tensor:
    """``value`` summed over the processes (itself when alone)."""
    import torch.distributed as dist

    if current().distributed:
        value = value.clone()
        dist.all_reduce(value)
    return value


def shutdown() -> None:
    """Leave the process group (at the end of a ``torchrun`` job)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _GatherRows(torch.autograd.Function):
    """All processes' (equally padded) rows stacked (W, rows, ...). The backward pass sums the
    gradient every process computed for all rows and hands each process its own part."""

    @staticmethod
    def forward(ctx: Any, padded: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        shard = current()
        parts = [torch.empty_like(padded) for _ in range(shard.world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.rank = shard.rank
        return torch.stack(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank]


def gather_rows(local: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Every process's rows in rank order (``counts[r]`` rows from rank r), the gradient of each
    process's own rows flowing back to it, summed over what every process's loss asks of them
    (the gather contrastive losses need: every process then computes the loss over the whole
    global batch, and carries 1/N of it)."""
    longest = max(counts)
    padding = local.new_zeros((longest - local.shape[0], *local.shape[1:]))
    stacked = _GatherRows.apply(torch.cat([local, padding]))
    return torch.cat([stacked[r, :count] for r, count in enumerate(counts)])


def broadcast_state(
    state: dict[str, torch.Tensor], device: torch.device
) -> dict[str, torch.Tensor]:
    """Rank 0's tensors on every process (each process may have built its model from another
    random state; data-parallel training starts from one)."""
    import torch.distributed as dist

    if not current().distributed:
        return state
    out = {}
    for name, tensor in state.items():
        moved = tensor.to(device).contiguous()
        dist.broadcast(moved, src=0)
        out[name] = moved.to(tensor.device)
    return out
