"""``FusionModel``: encoders (optional) + a fusion + a head, for one task.

The model works on features — ``forward(features, present)`` — so it trains just as well on
cached features as on raw inputs. :meth:`FusionModel.inputs_of` turns any batch (a
:class:`~omnifuse.data.cache.CachedBatch` or a :class:`~omnifuse.models.raw.RawBatch`) into those
features, running the encoders for raw batches, and :meth:`FusionModel.predict_raw` goes from
raw samples (``{"image": path, "audio": (wave, rate), ...}``) to predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from omnifuse.data.cache import CachedBatch
from omnifuse.encoders.base import Encoder
from omnifuse.errors import ConfigError, UnknownComponentError
from omnifuse.fusion import create_fusion, fusions
from omnifuse.fusion.base import Fusion, FusionOutput
from omnifuse.heads import create_head
from omnifuse.models.config import ModelConfig
from omnifuse.models.encoders import build_encoder
from omnifuse.models.raw import RawBatch, RawDataset, scatter_rows
from omnifuse.tasks import Task, create_task
from omnifuse.types import Encoded

Batch = CachedBatch | RawBatch


@dataclass
class ModelOutput:
    """``logits`` (B, output_dim) for the task, and everything the fusion reported."""

    logits: torch.Tensor
    fusion: FusionOutput


class FusionModel(nn.Module):
    """A fusion and a head (none for decision-level fusions, whose fusion gives the logits).

    ``encoders`` holds the encoders of an end-to-end model from the start; the encoders of a
    model trained on cached features are built on first use from ``config.encoders``.
    """

    def __init__(
        self,
        config: ModelConfig,
        fusion: Fusion,
        head: nn.Module | None,
        task: Task,
        encoders: Mapping[str, Encoder] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.fusion = fusion
        self.head = head
        self.task = task
        self.encoders = nn.ModuleDict(dict(encoders or {}))

    @property
    def modalities(self) -> tuple[str, ...]:
        """The columns in presence-mask order (sorted by name)."""
        return self.fusion.modalities

    @property
    def device(self) -> torch.device:
        return next(self.fusion.parameters()).device

    def forward(self, features: Mapping[str, Encoded], present: torch.Tensor) -> ModelOutput:
        """``features`` per column and ``present`` (B, M) in :attr:`modalities` order."""
        out = self.fusion(features, present)
        if self.head is None:
            if out.logits is None:
                raise ConfigError(f"fusion {self.config.fusion!r} has no head and gave no logits")
            return ModelOutput(out.logits, out)
        return ModelOutput(self.head(out.fused), out)  # (B, output_dim)

    def loss(
        self, output: ModelOutput, targets: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        """The task's loss, with the modality heads' auxiliary loss when the fusion has them."""
        return self.task.loss(
            output.logits, targets, output.fusion.modality_logits, present, self.modalities
        )

    def train(self, mode: bool = True) -> FusionModel:
        """Encoders that do not learn with the model stay in eval mode (no dropout, fixed
        normalisation statistics)."""
        super().train(mode)
        for encoder in self.encoders.values():
            if not self.learns(encoder):
                encoder.eval()
        return self

    def learns(self, encoder: nn.Module) -> bool:
        return self.config.end_to_end and bool(getattr(encoder, "trainable", False))

    def encoder(self, column: str) -> Encoder:
        """The encoder of ``column`` (built by :meth:`ensure_encoders` or with the model)."""
        return cast(Encoder, self.encoders[column])

    def ensure_encoders(self) -> None:
        """Build the missing encoders of ``config.encoders``, on the model's device."""
        missing = [c for c in self.modalities if c not in self.encoders]
        unknown = [c for c in missing if c not in self.config.encoders]
        if unknown:
            raise ConfigError(f"no encoder configured for column(s) {unknown}; set config.encoders")
        for column in missing:
            encoder = build_encoder(self.config.encoders[column], device=self.device)
            if encoder.dim != self.config.modalities[column]:
                raise ConfigError(
                    f"encoder of {column!r} gives {encoder.dim}-d features; "
                    f"the model expects {self.config.modalities[column]}"
                )
            self.encoders[column] = encoder.eval()

    def inputs_of(
        self, batch: Batch, device: torch.device | None = None
    ) -> tuple[dict[str, Encoded], torch.Tensor]:
        """Features and ``present`` (B, M) of a batch, on ``device`` (default: the model's)."""
        device = device or self.device
        present = to_device(self._present(batch.present, batch.columns), device)
        if isinstance(batch, RawBatch):
            return self._encode(batch, device), present
        features = {
            m: _move(batch.features[m], device) for m in self.modalities if m in batch.features
        }
        return features, present

    def _present(self, present: torch.Tensor, columns: Sequence[str]) -> torch.Tensor:
        """Presence in the batch's column order → in this model's column order."""
        if tuple(columns) == self.modalities:
            return present
        out = torch.zeros(present.shape[0], len(self.modalities), dtype=torch.bool)
        for j, m in enumerate(self.modalities):
            if m in columns:
                out[:, j] = present[:, list(columns).index(m)]
        return out

    def _encode(self, batch: RawBatch, device: torch.device) -> dict[str, Encoded]:
        size = int(batch.present.shape[0])
        features: dict[str, Encoded] = {}
        for column, (collated, rows) in batch.inputs.items():
            if column not in self.modalities:
                continue
            encoder = self.encoder(column)
            _follow_parameters(encoder)
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.learns(encoder)):
                encoded = _move(encoder.run_batch(collated), device)
            if len(rows) < size:
                encoded = scatter_rows(encoded, to_device(rows, device), size)
            features[column] = encoded
        return features

    def predict_raw(self, samples: list[dict[str, Any]], *, batch_size: int = 32) -> ModelOutput:
        """Predict from raw inputs: each sample maps columns to raw values (paths, text,
        ``(wave, rate)``, PIL images); absent columns count as missing modalities. Bad input
        raises its :class:`~omnifuse.errors.InputError`."""
        if not samples:
            raise ValueError("predict_raw needs at least one sample")
        data = RawDataset(samples, self, errors="raise")
        was_training = self.training
        self.eval()
        outputs: list[ModelOutput] = []
        try:
            with torch.inference_mode():
                for start in range(0, len(samples), batch_size):
                    chunk = [data[i] for i in range(start, min(start + batch_size, len(samples)))]
                    outputs.append(self(*self.inputs_of(data.collate(chunk))))
        finally:
            self.train(was_training)
        return concat_outputs(outputs)


def _move(encoded: Encoded, device: torch.device) -> Encoded:
    return Encoded(
        to_device(encoded.tokens, device),
        to_device(encoded.mask, device),
        to_device(encoded.pooled, device),
    )


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy to ``device`` without stalling the host: a copy from pageable memory to a GPU waits
    for the GPU's queue to drain, one from pinned memory does not."""
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def _follow_parameters(encoder: Encoder) -> None:
    """Point an encoder's input placement at wherever its weights now are."""
    weight = next(encoder.parameters(), None)
    if weight is not None and getattr(encoder, "device", None) != weight.device:
        encoder.device = weight.device


def concat_outputs(outputs: Sequence[ModelOutput]) -> ModelOutput:
    """Join the outputs of consecutive batches (optional fields kept where every batch has them)."""
    if len(outputs) == 1:
        return outputs[0]
    fusions_out = [o.fusion for o in outputs]

    def cat(name: str) -> torch.Tensor | None:
        parts = [getattr(f, name) for f in fusions_out]
        if any(p is None for p in parts) or len({p.shape[1:] for p in parts}) > 1:
            return None
        return torch.cat(parts)

    fused = torch.cat([f.fused for f in fusions_out])
    modality_logits = None
    if all(f.modality_logits for f in fusions_out):
        keys = set.intersection(*(set(f.modality_logits or {}) for f in fusions_out))
        modality_logits = {
            k: torch.cat([(f.modality_logits or {})[k] for f in fusions_out]) for k in keys
        }
    merged = FusionOutput(
        fused=fused,
        tokens=cat("tokens"),
        token_mask=cat("token_mask"),
        weights=cat("weights"),
        logits=cat("logits"),
        modality_logits=modality_logits,
    )
    return ModelOutput(torch.cat([o.logits for o in outputs]), merged)


def reads_tokens(model: nn.Module) -> bool:
    """Whether any fusion inside the model reads token sequences (not only pooled vectors)."""
    return any(isinstance(m, Fusion) and m.uses_tokens for m in model.modules())


def build_model(
    config: ModelConfig, *, encoders: Mapping[str, Encoder] | None = None
) -> FusionModel:
    """Assemble the model of ``config``. An end-to-end model gets its encoders now (``encoders``
    may pass ones already built); its feature sizes must match theirs."""
    config.validate()
    task = create_task(config.task, config.classes, **config.task_cfg)
    built: dict[str, Encoder] = {}
    if config.end_to_end:
        built = {
            c: (encoders or {}).get(c) or build_encoder(config.encoders[c])
            for c in config.modalities
        }
        for column, encoder in built.items():
            if encoder.dim != config.modalities[column]:
                raise ConfigError(
                    f"model config key 'modalities.{column}': encoder gives {encoder.dim}, "
                    f"config says {config.modalities[column]}"
                )
    fusion = _create_fusion(config, task.output_dim)
    head = None
    if fusion.kind != "decision":
        try:
            head = create_head(config.head, fusion.dim, task.output_dim, **config.head_cfg)
        except UnknownComponentError as err:
            raise ConfigError(f"model config key 'head': {err}") from None
    return FusionModel(config, fusion, head, task, built)


def _create_fusion(config: ModelConfig, num_classes: int) -> Fusion:
    options = dict(config.fusion_cfg)
    try:
        kind = getattr(fusions.get(config.fusion), "kind", "feature")
    except UnknownComponentError as err:
        raise ConfigError(f"model config key 'fusion': {err}") from None
    if kind == "decision":
        options["num_classes"] = num_classes
    try:
        return create_fusion(config.fusion, dict(config.modalities), **options)
    except TypeError as err:
        raise ConfigError(f"model config key 'fusion_cfg': {err}") from None
