"""What one kind of training supplies to the training loop (:func:`omnifuse.train.loop.fit`):
its parameters, its batches, its loss and its validation score.

Batches are named by the indices of their samples, a function of the seed and the epoch only
(so a resumed run, and every process of a data-parallel run, sees the same ones). The loop hands
each process its slice of every global batch (:meth:`Objective.load`); a slice's loss counts by
its share of the global batch's loss terms, so N processes compute the gradient one process
would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import resolve_device
from omnifuse.train.config import TrainConfig
from omnifuse.train.distributed import Shard


class Objective:
    """Subclasses implement the methods that raise here; the others have defaults that fit
    most objectives."""

    device: torch.device = torch.device("cpu")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups (``params``, optionally ``lr`` and ``weight_decay``; the training
        config's values fill in what a group leaves out)."""
        raise NotImplementedError

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        """The global batches of ``epoch`` (0-based) as sample indices."""
        raise NotImplementedError

    def materialize(self, batches: Sequence[Sequence[int]]) -> Iterable[Any]:
        """The batches for those index lists, in order (default: the indices themselves)."""
        return iter(batches)

    def loss_weight(self, indices: Sequence[int]) -> float:
        """How many terms the loss of these samples averages over (samples by default; an
        objective whose loss averages over tokens counts tokens)."""
        return float(len(indices))

    def load(self, batches: Sequence[Sequence[int]], shard: Shard) -> Iterator[tuple[Any, float]]:
        """This process's part of each global batch, with the share of the global loss it
        carries (None, 0 where its slice is empty)."""
        if not shard.distributed:
            yield from ((batch, 1.0) for batch in self.materialize(batches))
            return
        slices = [shard.slice(b) for b in batches]
        loaded = iter(self.materialize([s for s in slices if len(s)]))
        for whole, part in zip(batches, slices, strict=True):
            if not len(part):
                yield None, 0.0
                continue
            yield next(loaded), self.loss_weight(part) / self.loss_weight(whole)

    def loss(self, batch: Any) -> torch.Tensor:
        """The scalar loss of one batch (runs under autocast when the config asks for bf16)."""
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        """Detached CPU copies of the trained tensors: the best-epoch snapshot and the
        checkpoint hold these."""
        raise NotImplementedError

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def validate(self) -> dict[str, Any] | None:
        """Validation metrics after an epoch, or None without validation data (the training
        loss then decides early stopping and the best weights)."""
        return None

    def train_mode(self) -> None:
        """Put the modules in training mode at the start of an epoch."""

    def after_step(self, step: int) -> None:
        """Called after each optimizer step (``step`` counts them from 1): where an objective
        keeps running averages of its weights."""

    def describe(self, record: dict[str, Any]) -> None:
        """Add objective-specific fields to an epoch's log record."""

    def settings(self) -> dict[str, Any]:
        """What, besides the training config, must not change between a run and its resumption."""
        return {}


class ModuleObjective(Objective):
    """An objective whose trained tensors are those of one module, ``model``: its training mode,
    its state-dict snapshot and its restore."""

    model: nn.Module

    def train_mode(self) -> None:
        self.model.train()

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(weights)


class DataObjective(ModuleObjective):
    """An objective over a training set, shuffled into batches of ``config.batch_size`` every
    epoch, and an optional validation set, on the device the config names."""

    def __init__(
        self, model: nn.Module, train_data: Any, val_data: Any | None, config: TrainConfig
    ) -> None:
        self.model = model
        self.train_data = train_data
        self.val_data = val_data
        self.config = config
        self.device = resolve_device(config.device)

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        return shuffled_batches(
            len(self.train_data), self.config.batch_size, self.config.seed * 1_000_003 + epoch
        )


def shuffled_batches(count: int, batch_size: int, seed: int) -> list[Sequence[int]]:
    """A seeded permutation of ``range(count)`` cut into batches, the last one shorter: the
    very order a ``DataLoader(shuffle=True)`` with a generator of ``seed`` takes (it draws one
    number for its workers' seeds from the generator, then the permutation), so a hand-written
    loop over such a loader sees the same batches."""
    generator = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(count, generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


def decay_groups(parameters: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only, not on biases, norms and single vectors."""
    learned = [p for p in parameters if p.requires_grad]
    return [
        {"params": [p for p in learned if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in learned if p.ndim < 2], "weight_decay": 0.0},
    ]
