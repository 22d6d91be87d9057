"""Fusion models through the one training loop: cached features or raw inputs.

:class:`FusionObjective` is what :func:`~omnifuse.train.loop.fit` needs from a fusion model:
each batch moves to the device (running the encoders for raw batches), modalities are hidden at
random (modality dropout), and the task's loss comes back; validation is the task's metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from omnifuse.data.cache import CachedFeatureDataset
from omnifuse.errors import ConfigError
from omnifuse.models.folder import model_state
from omnifuse.models.fusion_model import FusionModel, to_device
from omnifuse.models.inference import (
    Targets,
    base_dataset,
    collate_fn,
    dataset_records,
    evaluate,
)
from omnifuse.models.raw import RawDataset
from omnifuse.train.checkpoint import has_checkpoint
from omnifuse.train.config import TrainConfig, TrainingError, TrainResult
from omnifuse.train.distill import Distillation
from omnifuse.train.loop import fit, seed_everything
from omnifuse.train.modality_dropout import drop_modalities
from omnifuse.train.objective import DataObjective

__all__ = ["FusionObjective", "TrainConfig", "TrainResult", "evaluate", "seed_everything", "train"]


class FusionObjective(DataObjective):
    """A fusion model's batches, loss and validation for the training loop."""

    model: FusionModel

    def __init__(
        self,
        model: FusionModel,
        train_data: Dataset[Any],
        val_data: Dataset[Any] | None,
        config: TrainConfig,
        distillation: Distillation | None = None,
    ) -> None:
        super().__init__(model, train_data, val_data, config)
        model.to(self.device)
        self.distillation = distillation
        if distillation is not None:
            distillation.check(model)
            distillation.teacher.to(self.device)
        self.targets = Targets(model.task, model.config.target, dataset_records(train_data))
        self.drop_p = (
            model.config.modality_dropout
            if config.modality_dropout is None
            else config.modality_dropout
        )

    def parameter_groups(self) -> list[dict[str, Any]]:
        return parameter_groups(self.model, self.config)

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        _set_epoch(self.train_data, epoch)  # raw inputs: this epoch's augmentation draws
        return super().batch_indices(epoch)

    def materialize(self, batches: Sequence[Sequence[int]]) -> Iterable[Any]:
        return DataLoader(
            self.train_data,
            batch_sampler=[list(b) for b in batches],
            generator=torch.Generator(),  # its worker-seed draw leaves the global RNG be
            collate_fn=collate_fn(self.train_data),
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def loss(self, batch: Any) -> torch.Tensor:
        y = to_device(self.targets.of(batch), self.device)
        features, present = self.model.inputs_of(batch, self.device)  # runs raw encoders
        if self.drop_p > 0:
            present = drop_modalities(present, self.drop_p)
        out = self.model(features, present)
        loss = self.model.loss(out, y, present)
        if self.distillation is not None:
            return self.distillation.loss(out.logits, loss, batch)
        return loss

    def validate(self) -> dict[str, Any] | None:
        if self.val_data is None:
            return None
        return evaluate(
            self.model,
            self.val_data,
            batch_size=self.config.eval_batch_size,
            device=self.device,
            bf16=self.config.bf16,
        )

    def weights(self) -> dict[str, torch.Tensor]:
        return model_state(self.model)

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        expected = set(model_state(self.model))
        if set(weights) != expected:
            missing = sorted(expected - set(weights))[:5]
            extra = sorted(set(weights) - expected)[:5]
            raise TrainingError(
                f"weights do not fit the model (missing {missing}, unexpected {extra})"
            )
        self.model.load_state_dict(weights, strict=False)

    def settings(self) -> dict[str, Any]:
        return {"model": self.model.config.to_dict()}


def train(
    model: FusionModel,
    train_data: Dataset[Any],
    val_data: Dataset[Any] | None,
    config: TrainConfig,
    *,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    distillation: Distillation | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train_data`` (cached features or a
    :class:`~omnifuse.models.RawDataset`), validating on ``val_data`` after every epoch; the
    model ends with its best validation weights. See :class:`TrainConfig` for the settings;
    ``on_epoch`` as in :func:`~omnifuse.train.loop.fit`; ``distillation`` adds a teacher's
    soft labels to the loss (:mod:`omnifuse.train.distill`)."""
    config.validate()
    objective = FusionObjective(model, train_data, val_data, config, distillation)
    resuming = config.resume and config.checkpoint_dir and has_checkpoint(config.checkpoint_dir)
    if not resuming:
        seed_everything(config.seed)
        calibrate_head(model, train_data, objective.targets)
    metric = resolve_metric(config.metric, model, val_data)
    result = fit(objective, config, metric=metric, on_epoch=on_epoch)
    result.skipped_inputs = _skipped(train_data)
    return result


def resolve_metric(name: str, model: FusionModel, val_data: Dataset[Any] | None) -> str:
    """``"auto"`` → the task's main metric; without validation data, early stopping and best
    weights follow the training loss."""
    if val_data is None:
        return "loss"
    return model.task.primary_metric if name == "auto" else name


def parameter_groups(model: FusionModel, config: TrainConfig) -> list[dict[str, Any]]:
    """The parameters that learn: weight decay on matrices only (not on biases, norms and
    single vectors), encoders trained end to end at ``encoder_lr``."""
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
    return [
        {
            "params": params,
            "lr": encoder_lr if is_encoder else config.lr,
            "weight_decay": config.weight_decay if decays else 0.0,
        }
        for (is_encoder, decays), params in sorted(groups.items())
    ]


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
