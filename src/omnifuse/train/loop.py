"""The one training loop. Every model omnifuse trains — fusion models, aligned heads, the
projector's soft prompt, the built-in decoder — goes through :func:`fit`; each supplies only an
:class:`Objective` (its parameters, its batches, its loss and its validation score).

The loop owns everything else, once: AdamW over the objective's parameter groups, linear warmup
then cosine decay, gradient clipping, bf16 autocast, gradient accumulation, early stopping with
the best weights restored, a wall-clock budget, a resumable checkpoint after every epoch
(bit-identical resume: the random generators are saved and every epoch's batches depend only on
the seed and the epoch), ``metrics.jsonl``, TensorBoard and MLflow, a progress bar, seeds and
torch's thread count. The loss is summed on the device and read back once per epoch, so a step
never waits for the accelerator.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.progress import track
from omnifuse.tasks.base import higher_is_better
from omnifuse.threads import torch_threads
from omnifuse.train import distributed, tracking
from omnifuse.train.checkpoint import (
    TrainingState,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from omnifuse.train.config import RESUMABLE_CHANGES, TrainConfig, TrainingError, TrainResult
from omnifuse.train.log import MetricsLog
from omnifuse.train.objective import Objective
from omnifuse.train.schedule import warmup_cosine

__all__ = ["fit", "seed_everything", "torch_threads"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(
    objective: Objective,
    config: TrainConfig,
    *,
    metric: str = "loss",
    history: Sequence[dict[str, Any]] = (),
    description: str = "epoch",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``objective`` under ``config``; it ends with its best weights (by validation
    ``metric``, or by training loss without validation) unless the run was interrupted by
    ``stop_after_epochs``. ``history``: records of earlier runs into the same log (a previous
    stage), kept at the head of ``metrics.jsonl``. ``on_epoch`` sees each epoch's record once it
    is logged; an exception it raises ends the run there (how a tuner prunes a trial)."""
    config.validate()
    with torch_threads(config.threads):
        return _fit(objective, config, metric, list(history), description, on_epoch)


def _fit(
    objective: Objective,
    config: TrainConfig,
    metric: str,
    earlier: list[dict[str, Any]],
    description: str,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    if config.mlflow is not None:
        tracking.require_mlflow()  # on every rank, before any work
    shard = distributed.init_from_env(objective.device)  # the process group's start-up aside
    started = time.perf_counter()
    main = shard.rank == 0
    seed_everything(config.seed)
    device = objective.device
    optimizer = _adamw(objective.parameter_groups(), config, device)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    batch_count = len(objective.batch_indices(0))
    if batch_count == 0:
        raise ConfigError("the training set is empty")
    steps_per_epoch = math.ceil(batch_count / config.accumulate)
    total_steps = steps_per_epoch * config.epochs
    warmup = round(config.warmup_ratio * total_steps)
    settings = {
        "train": {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES},
        **objective.settings(),
    }
    if shard.distributed:  # one starting point for every process
        objective.load_weights(distributed.broadcast_state(objective.weights(), device))
    state, best_weights = TrainingState(), None
    if config.resume and config.checkpoint_dir and has_checkpoint(config.checkpoint_dir):
        restored = load_checkpoint(config.checkpoint_dir, optimizer=optimizer, settings=settings)
        objective.load_weights(restored.weights)
        state, best_weights = restored.state, restored.best_weights
    log = MetricsLog(config.log_dir if main else None, earlier + state.history)
    tracked: tracking.MlflowRun | None = None
    stopped_early, out_of_time, epochs_run, failed = False, False, 0, True
    deadline = None if config.max_minutes is None else started + 60.0 * config.max_minutes
    try:
        if main:
            tracked = _open_tracking(config, objective, earlier + state.history)
        for epoch in range(state.epoch, config.epochs):
            if config.stop_after_epochs is not None and epochs_run >= config.stop_after_epochs:
                break
            epoch_started = time.perf_counter()
            objective.train_mode()
            global_batches = objective.batch_indices(epoch)
            count = len(global_batches)
            batches = objective.load(global_batches, shard)
            if config.progress and main:
                label = f"{description} {epoch + 1}/{config.epochs}"
                batches = track(batches, label, total=count)
            total = torch.zeros((), device=device)
            state.step, ran = _run_epoch(
                objective, batches, optimizer, parameters, config, state.step, total_steps,
                warmup, count, total, deadline,
            )  # fmt: skip
            out_of_time = ran < count
            train_loss = float(distributed.sum_across(total)) / max(1, ran)
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
            if out_of_time:
                record["batches"] = ran
            objective.describe(record)
            state.epoch = epoch + 1
            if _improved(score, state.best_metric, direction, config.min_delta):
                state.best_metric, state.best_epoch, state.bad_epochs = score, epoch + 1, 0
                best_weights = objective.weights()
            else:
                state.bad_epochs += 1
            state.history.append(record)
            log.write(record)
            if tracked is not None:
                tracked.log_epoch(record)
            epochs_run += 1
            if config.checkpoint_dir and main:
                save_checkpoint(
                    config.checkpoint_dir,
                    weights=objective.weights(),
                    optimizer=optimizer,
                    state=state,
                    best_weights=best_weights,
                    settings=settings,
                )
            if on_epoch is not None:
                on_epoch(record)
            if config.patience is not None and state.bad_epochs >= config.patience:
                stopped_early = True
                break
            if deadline is not None and _past(deadline, device):
                out_of_time = True
                break
        failed = False
    finally:
        log.close()
        if tracked is not None:
            tracked.end(failed=failed)
    completed = stopped_early or out_of_time or state.epoch >= config.epochs
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
        out_of_time=out_of_time,
        steps=state.step,
        extra={"mlflow_run_id": tracked.run_id} if tracked is not None else {},
    )


def _open_tracking(
    config: TrainConfig, objective: Objective, history: list[dict[str, Any]]
) -> tracking.MlflowRun | None:
    """The MLflow run of this call when ``train.mlflow`` is set (rank 0 only): the training
    config and the objective's settings as params, earlier epochs replayed."""
    settings = config.mlflow_settings
    if settings is None:
        return None
    train = {k: v for k, v in config.to_dict().items() if k != "mlflow"}
    log_dir = Path(config.log_dir).resolve() if config.log_dir else None
    return tracking.MlflowRun.start(
        settings,
        params={"train": train, **objective.settings()},
        history=history,
        default_name=log_dir.name if log_dir else None,
        tags={"omnifuse.log_dir": str(log_dir)} if log_dir else None,
    )


def _run_epoch(
    objective: Objective,
    batches: Iterable[tuple[Any, float]],
    optimizer: torch.optim.Optimizer,
    parameters: list[torch.Tensor],
    config: TrainConfig,
    step: int,
    total_steps: int,
    warmup: int,
    batch_count: int,
    total: torch.Tensor,
    deadline: float | None = None,
) -> tuple[int, int]:
    """One pass over the batches: ``config.accumulate`` batches per optimizer step (fewer in
    the epoch's last group), the loss of each added to ``total``. Each batch's loss counts by
    its share of the global batch (1 in a single process); across processes the gradients are
    summed before the step. The pass ends early after the first step past ``deadline`` (a
    ``time.perf_counter`` value; every process stops at the same step). Returns the step count
    and how many batches ran."""
    device = objective.device
    summed = distributed.current().distributed
    pending = group_size = ran = 0
    for index, (batch, share) in enumerate(batches):
        if pending == 0:
            pending = group_size = min(config.accumulate, batch_count - index)
            scale = warmup_cosine(step, total_steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * scale
            optimizer.zero_grad(set_to_none=True)
        if batch is not None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss = objective.loss(batch)
            weight = share / group_size
            (loss if weight == 1.0 else loss * weight).backward()
            total += loss.detach() if share == 1.0 else loss.detach() * share
        pending -= 1
        if pending == 0:
            if summed:
                distributed.sum_gradients(parameters)
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            step += 1
            objective.after_step(step)
            if deadline is not None and _past(deadline, device):
                return step, index + 1
        ran = index + 1
    return step, ran


def _past(deadline: float, device: torch.device) -> bool:
    """Whether the clock passed ``deadline`` on any process (all agree, so all stop at once)."""
    late = torch.tensor(float(time.perf_counter() >= deadline), device=device)
    return bool(distributed.sum_across(late) > 0)


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
