"""The trainer: one loop for cached features and raw inputs, resumable, with early stopping.

Each step moves a batch to the device (running the encoders for raw batches), hides modalities
at random (modality dropout), runs the model under optional bf16 autocast, and takes an AdamW
step with a clipped gradient and the warmup-cosine learning rate. The loss is summed on the
device and read back once per epoch, so the step never waits for the accelerator.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from omnifuse.data.cache import CachedFeatureDataset
from omnifuse.encoders.base import resolve_device
from omnifuse.errors import ConfigError
from omnifuse.models.fusion_model import FusionModel, to_device
from omnifuse.models.inference import (
    Targets,
    base_dataset,
    dataset_records,
    evaluate,
    loader,
)
from omnifuse.models.raw import RawDataset
from omnifuse.progress import track
from omnifuse.tasks import higher_is_better
from omnifuse.train.checkpoint import (
    TrainingState,
    has_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from omnifuse.train.config import RESUMABLE_CHANGES, TrainConfig, TrainingError, TrainResult
from omnifuse.train.log import MetricsLog
from omnifuse.train.modality_dropout import drop_modalities
from omnifuse.train.schedule import warmup_cosine

__all__ = ["TrainConfig", "TrainResult", "evaluate", "seed_everything", "train"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    model: FusionModel,
    train_data: Dataset[Any],
    val_data: Dataset[Any] | None,
    config: TrainConfig,
) -> TrainResult:
    """Train ``model`` in place on ``train_data`` (cached features or a
    :class:`~omnifuse.models.RawDataset`), validating on ``val_data`` after every epoch; the
    model ends with its best validation weights. See :class:`TrainConfig` for the settings."""
    config.validate()
    started = time.perf_counter()
    device = resolve_device(config.device)
    seed_everything(config.seed)
    model.to(device)
    metric = resolve_metric(config.metric, model, val_data)
    optimizer = make_optimizer(model, config, device)
    parameters = _trained_parameters(optimizer)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise ConfigError("the training set is empty")
    total_steps = steps_per_epoch * config.epochs
    warmup = round(config.warmup_ratio * total_steps)
    targets = Targets(model.task, model.config.target, dataset_records(train_data))
    settings = _settings(model, config)
    state, best_weights = TrainingState(), None
    if config.resume and config.checkpoint_dir and has_checkpoint(config.checkpoint_dir):
        state, best_weights = load_checkpoint(
            config.checkpoint_dir, model=model, optimizer=optimizer, settings=settings
        )
    else:
        calibrate_head(model, train_data, targets)
    log = MetricsLog(config.log_dir, state.history)
    drop_p = (
        model.config.modality_dropout
        if config.modality_dropout is None
        else config.modality_dropout
    )
    stopped_early = False
    epochs_run = 0
    try:
        for epoch in range(state.epoch, config.epochs):
            if config.stop_after_epochs is not None and epochs_run >= config.stop_after_epochs:
                break
            epoch_started = time.perf_counter()
            _set_epoch(train_data, epoch)
            batches = loader(
                train_data,
                config.batch_size,
                shuffle=True,
                seed=config.seed * 1_000_003 + epoch,
                num_workers=config.num_workers,
                pin_memory=device.type == "cuda",
            )
            model.train()
            total = torch.zeros((), device=device)
            for batch in _progress(batches, f"epoch {epoch + 1}/{config.epochs}", config.progress):
                scale = warmup_cosine(state.step, total_steps, warmup)
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * scale
                y = to_device(targets.of(batch), device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                    features, present = model.inputs_of(batch, device)  # runs raw encoders
                    if drop_p > 0:
                        present = drop_modalities(present, drop_p)
                    out = model(features, present)
                    loss = model.loss(out, y, present)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(parameters, config.grad_clip)
                optimizer.step()
                total += loss.detach()
                state.step += 1
            train_loss = float(total) / steps_per_epoch
            if not math.isfinite(train_loss):
                raise TrainingError(f"training diverged in epoch {epoch + 1} (loss {train_loss})")
            record = {
                "epoch": epoch + 1,
                "step": state.step,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
            }
            score = train_loss
            if val_data is not None:
                val = evaluate(
                    model,
                    val_data,
                    batch_size=config.eval_batch_size,
                    device=device,
                    bf16=config.bf16,
                )
                record.update({f"val_{k}": v for k, v in val.items() if _is_number(v)})
                score = float(val[metric])
            record["seconds"] = round(time.perf_counter() - epoch_started, 3)
            state.epoch = epoch + 1
            if _improved(score, state.best_metric, metric, config.min_delta):
                state.best_metric, state.best_epoch, state.bad_epochs = score, epoch + 1, 0
                best_weights = _snapshot(model)
            else:
                state.bad_epochs += 1
            state.history.append(record)
            log.write(record)
            epochs_run += 1
            if config.checkpoint_dir:
                save_checkpoint(
                    config.checkpoint_dir,
                    model=model,
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
        load_weights(model, best_weights)
    return TrainResult(
        history=list(state.history),
        best_metric=float(state.best_metric) if state.best_metric is not None else math.nan,
        best_epoch=state.best_epoch,
        seconds=time.perf_counter() - started,
        metric=metric if val_data is not None else "train_loss",
        stopped_early=stopped_early,
        completed=completed,
        steps=state.step,
        skipped_inputs=_skipped(train_data),
    )


def resolve_metric(name: str, model: FusionModel, val_data: Dataset[Any] | None) -> str:
    """``"auto"`` → the task's main metric; without validation data, early stopping and best
    weights follow the training loss."""
    if val_data is None:
        return "loss"
    return model.task.primary_metric if name == "auto" else name


def _improved(score: float, best: float | None, metric: str, min_delta: float) -> bool:
    if best is None:
        return True
    if higher_is_better(metric):
        return score > best + min_delta
    return score < best - min_delta


def make_optimizer(
    model: FusionModel, config: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW over the parameters that learn: weight decay on matrices only (not on biases,
    norms and single vectors), encoders trained end to end at ``encoder_lr``."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_encoder = name.startswith("encoders.")
        if is_encoder and not model.learns(model.encoders[name.split(".", 2)[1]]):
            continue
        groups.setdefault((is_encoder, param.ndim >= 2), []).append(param)
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    encoder_lr = config.lr if config.encoder_lr is None else config.encoder_lr
    param_groups = [
        {
            "params": params,
            "lr": encoder_lr if is_encoder else config.lr,
            "initial_lr": encoder_lr if is_encoder else config.lr,
            "weight_decay": config.weight_decay if decays else 0.0,
        }
        for (is_encoder, decays), params in sorted(groups.items())
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(param_groups, lr=config.lr, fused=fused or None)


def _trained_parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def calibrate_head(model: FusionModel, data: Dataset[Any], targets: Targets) -> None:
    """Give a head with a ``calibrate`` method (regression) the training targets' scale."""
    calibrate = getattr(model.head, "calibrate", None)
    if calibrate is None:
        return
    names = dataset_names(data)
    if names is None:
        raise ConfigError("a regression head needs a dataset with named samples")
    values = torch.stack([targets.one(n) for n in names]).to(model.device)
    calibrate(values)


def dataset_names(data: Dataset[Any]) -> list[str] | None:
    """Sample names of a cached or raw dataset (or a subset of one), in index order."""
    if isinstance(data, Subset):
        inner = dataset_names(data.dataset)
        return None if inner is None else [inner[i] for i in data.indices]
    if isinstance(data, CachedFeatureDataset):
        return [row[0] for row in data.rows]
    if isinstance(data, RawDataset):
        return list(data.names or [])
    return None


def _set_epoch(data: Dataset[Any], epoch: int) -> None:
    base = base_dataset(data)
    if isinstance(base, RawDataset):
        base.set_epoch(epoch)


def _skipped(data: Dataset[Any]) -> int:
    base = base_dataset(data)
    return len(base.skipped) if isinstance(base, RawDataset) else 0


def _snapshot(model: FusionModel) -> dict[str, torch.Tensor]:
    from omnifuse.models.folder import model_state

    return model_state(model)


def _settings(model: FusionModel, config: TrainConfig) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    train = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    return {"train": train, "model": model.config.to_dict()}


def _progress(batches: Iterable[Any], description: str, enabled: bool) -> Iterator[Any]:
    if enabled:
        return track(batches, description)
    return iter(batches)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
