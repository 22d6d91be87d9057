"""The one training loop. Every model omnifuse trains — fusion models, aligned heads, the
projector's soft prompt, the built-in decoder — goes through :func:`fit`; each supplies only an
:class:`Objective` (its parameters, its batches, its loss and its validation score).

The loop owns everything else, once: AdamW over the objective's parameter groups, linear warmup
then cosine decay, gradient clipping, bf16 autocast, gradient accumulation, early stopping with
the best weights restored, a resumable checkpoint after every epoch (bit-identical resume: the
random generators are saved and every epoch's batches depend only on the seed and the epoch),
``metrics.jsonl`` and TensorBoard, a progress bar, seeds and torch's thread count. The loss is
summed on the device and read back once per epoch, so a step never waits for the accelerator.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.encoders.base import resolve_device
from omnifuse.errors import ConfigError
from omnifuse.progress import track
from omnifuse.tasks.base import higher_is_better
from omnifuse.train.checkpoint import (
    TrainingState,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from omnifuse.train.config import RESUMABLE_CHANGES, TrainConfig, TrainingError, TrainResult
from omnifuse.train.log import MetricsLog
from omnifuse.train.schedule import warmup_cosine

__all__ = [
    "DataObjective",
    "Objective",
    "decay_groups",
    "fit",
    "seed_everything",
    "torch_threads",
]


class Objective:
    """What one kind of training supplies to :func:`fit`. Subclasses implement the methods that
    raise here; the others have defaults that fit most objectives."""

    device: torch.device = torch.device("cpu")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups (``params``, optionally ``lr`` and ``weight_decay``; the training
        config's values fill in what a group leaves out)."""
        raise NotImplementedError

    def batches(self, epoch: int) -> Iterable[Any]:
        """The training batches of ``epoch`` (0-based), a function of the seed and the epoch
        only, so that a resumed run sees the same batches."""
        raise NotImplementedError

    def batch_count(self) -> int:
        """How many batches :meth:`batches` yields per epoch."""
        raise NotImplementedError

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

    def describe(self, record: dict[str, Any]) -> None:
        """Add objective-specific fields to an epoch's log record."""

    def settings(self) -> dict[str, Any]:
        """What, besides the training config, must not change between a run and its resumption."""
        return {}


class DataObjective(Objective):
    """An objective over a training set (batched by ``config.batch_size``) and an optional
    validation set, on the device the config names."""

    def __init__(
        self, model: nn.Module, train_data: Any, val_data: Any | None, config: TrainConfig
    ) -> None:
        self.model = model
        self.train_data = train_data
        self.val_data = val_data
        self.config = config
        self.device = resolve_device(config.device)

    def batch_count(self) -> int:
        return math.ceil(len(self.train_data) / self.config.batch_size)

    def train_mode(self) -> None:
        self.model.train()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def decay_groups(parameters: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only, not on biases, norms and single vectors."""
    learned = [p for p in parameters if p.requires_grad]
    return [
        {"params": [p for p in learned if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in learned if p.ndim < 2], "weight_decay": 0.0},
    ]


def fit(
    objective: Objective,
    config: TrainConfig,
    *,
    metric: str = "loss",
    history: Sequence[dict[str, Any]] = (),
    description: str = "epoch",
) -> TrainResult:
    """Train ``objective`` under ``config``; it ends with its best weights (by validation
    ``metric``, or by training loss without validation) unless the run was interrupted by
    ``stop_after_epochs``. ``history``: records of earlier runs into the same log (a previous
    stage), kept at the head of ``metrics.jsonl``."""
    config.validate()
    with torch_threads(config.threads):
        return _fit(objective, config, metric, list(history), description)


def _fit(
    objective: Objective,
    config: TrainConfig,
    metric: str,
    earlier: list[dict[str, Any]],
    description: str,
) -> TrainResult:
    started = time.perf_counter()
    seed_everything(config.seed)
    device = objective.device
    optimizer = _adamw(objective.parameter_groups(), config, device)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    batch_count = objective.batch_count()
    if batch_count == 0:
        raise ConfigError("the training set is empty")
    steps_per_epoch = math.ceil(batch_count / config.accumulate)
    total_steps = steps_per_epoch * config.epochs
    warmup = round(config.warmup_ratio * total_steps)
    settings = {
        "train": {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES},
        **objective.settings(),
    }
    state, best_weights = TrainingState(), None
    if config.resume and config.checkpoint_dir and has_checkpoint(config.checkpoint_dir):
        restored = load_checkpoint(config.checkpoint_dir, optimizer=optimizer, settings=settings)
        objective.load_weights(restored.weights)
        state, best_weights = restored.state, restored.best_weights
    log = MetricsLog(config.log_dir, earlier + state.history)
    stopped_early, epochs_run = False, 0
    try:
        for epoch in range(state.epoch, config.epochs):
            if config.stop_after_epochs is not None and epochs_run >= config.stop_after_epochs:
                break
            epoch_started = time.perf_counter()
            objective.train_mode()
            batches = objective.batches(epoch)
            if config.progress:
                label = f"{description} {epoch + 1}/{config.epochs}"
                batches = track(batches, label, total=batch_count)
            total = torch.zeros((), device=device)
            state.step = _run_epoch(
                objective, batches, optimizer, parameters, config, state.step, total_steps,
                warmup, batch_count, total,
            )  # fmt: skip
            train_loss = float(total) / batch_count
            if not math.isfinite(train_loss):
                raise TrainingError(f"training diverged in epoch {epoch + 1} (loss {train_loss})")
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": state.step,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
            }
            validation = objective.validate()
            score, direction = train_loss, "loss"
            if validation is not None:
                if metric not in validation:
                    known = sorted(k for k, v in validation.items() if _is_number(v))
                    raise ConfigError(
                        f"train.metric {metric!r} is not measured; choose from {known}"
                    )
                record.update({f"val_{k}": v for k, v in validation.items() if _is_number(v)})
                score, direction = float(validation[metric]), metric
            record["seconds"] = round(time.perf_counter() - epoch_started, 3)
            objective.describe(record)
            state.epoch = epoch + 1
            if _improved(score, state.best_metric, direction, config.min_delta):
                state.best_metric, state.best_epoch, state.bad_epochs = score, epoch + 1, 0
                best_weights = objective.weights()
            else:
                state.bad_epochs += 1
            state.history.append(record)
            log.write(record)
            epochs_run += 1
            if config.checkpoint_dir:
                save_checkpoint(
                    config.checkpoint_dir,
                    weights=objective.weights(),
                    optimizer=optimizer,
                    state=state,
                    best_weights=best_weights,
                    settings=settings,
                )
            if config.patience is not None and state.bad_epochs >= config.patience:
                stopped_early = True
                break
    finally:
        log.close()
    completed = stopped_early or state.epoch >= config.epochs
    if completed and best_weights is not None:
        objective.load_weights(best_weights)
    validated = any(k.startswith("val_") for r in state.history for k in r)
    return TrainResult(
        history=list(state.history),
        best_metric=float(state.best_metric) if state.best_metric is not None else math.nan,
        best_epoch=state.best_epoch,
        seconds=time.perf_counter() - started,
        metric=metric if validated else "train_loss",
        stopped_early=stopped_early,
        completed=completed,
        steps=state.step,
    )


def _run_epoch(
    objective: Objective,
    batches: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    parameters: list[torch.Tensor],
    config: TrainConfig,
    step: int,
    total_steps: int,
    warmup: int,
    batch_count: int,
    total: torch.Tensor,
) -> int:
    """One pass over the batches: ``config.accumulate`` batches per optimizer step (fewer in
    the epoch's last group), the loss of each added to ``total``. Returns the step count."""
    device = objective.device
    pending = group_size = 0
    for index, batch in enumerate(batches):
        if pending == 0:
            pending = group_size = min(config.accumulate, batch_count - index)
            scale = warmup_cosine(step, total_steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * scale
            optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            loss = objective.loss(batch)
        (loss if group_size == 1 else loss / group_size).backward()
        total += loss.detach()
        pending -= 1
        if pending == 0:
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            step += 1
    return step


def _adamw(
    groups: list[dict[str, Any]], config: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    for group in groups:
        group.setdefault("lr", config.lr)
        group.setdefault("weight_decay", config.weight_decay)
        group["initial_lr"] = group["lr"]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, fused=fused or None)


def _improved(score: float, best: float | None, metric: str, min_delta: float) -> bool:
    if best is None:
        return True
    if higher_is_better(metric):
        return score > best + min_delta
    return score < best - min_delta


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
