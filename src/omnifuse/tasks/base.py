"""Tasks: what a model's outputs mean — target encoding, loss and metrics.

A task turns a manifest's raw label values into target tensors (:meth:`Task.encode_target`),
scores the model's outputs against them (:meth:`Task.loss`) and summarises a whole evaluation
set (:meth:`Task.metrics`). Models stay task-agnostic: they only produce ``output_dim`` numbers
per sample. When a decision-level fusion reports per-modality logits, classification-like tasks
add the mean loss of the modality heads over the modalities each sample has, weighted by
``aux_weight``, so every modality head learns even when the others outvote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch

from omnifuse.errors import ConfigError
from omnifuse.registry import Registry

Rows = Sequence[Mapping[str, Any]] | None
"""The manifest rows of the samples being scored, when known (for grouped metrics)."""
Scores = dict[str, Any]
"""A task's metrics of a whole set: metric name → value (numbers, tables, class names)."""

LOWER_IS_BETTER = frozenset({"loss", "mae", "rmse", "mse", "ece"})


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is an improvement (False for losses and errors)."""
    return metric not in LOWER_IS_BETTER


class Task:
    """Base class. ``classes`` are the class names in output order (empty for regression)."""

    name: ClassVar[str] = ""
    primary_metric: ClassVar[str] = "accuracy"
    uses_classes: ClassVar[bool] = True

    def __init__(self, classes: Sequence[str] = (), *, aux_weight: float = 0.5) -> None:
        self.classes = [str(c) for c in classes]
        if self.uses_classes and not self.classes:
            raise ConfigError(f"task {self.name!r} needs at least one class")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"duplicate class names in {self.classes}")
        if aux_weight < 0:
            raise ConfigError(f"aux_weight must be >= 0, got {aux_weight}")
        self.aux_weight = aux_weight
        self._index = {c: i for i, c in enumerate(self.classes)}

    @property
    def output_dim(self) -> int:
        return len(self.classes)

    @classmethod
    def infer_classes(cls, values: Iterable[Any]) -> list[str]:
        """Class names for these raw label values, sorted (empty for tasks without classes)."""
        return sorted({str(v) for v in values if v is not None and v != ""})

    def class_index(self, value: Any) -> int:
        try:
            return self._index[str(value)]
        except KeyError:
            raise ConfigError(
                f"label {value!r} is not one of the {len(self.classes)} classes "
                f"({', '.join(self.classes[:10])}{', …' if len(self.classes) > 10 else ''})"
            ) from None

    def encode_target(self, value: Any) -> torch.Tensor:
        """One raw label value → its target tensor."""
        raise NotImplementedError

    def encode_targets(self, values: Sequence[Any]) -> torch.Tensor:
        return torch.stack([self.encode_target(v) for v in values])

    def sample_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B,) loss of each sample."""
        raise NotImplementedError

    def loss(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        modality_logits: Mapping[str, torch.Tensor] | None = None,
        present: torch.Tensor | None = None,
        modalities: Sequence[str] = (),
    ) -> torch.Tensor:
        """Mean loss over the batch, plus the auxiliary modality-head loss when given."""
        loss = self.sample_loss(logits.float(), targets).mean()
        if modality_logits and present is not None and self.aux_weight > 0:
            loss = loss + self.aux_weight * self.modality_loss(
                modality_logits, targets, present, modalities
            )
        return loss

    def modality_loss(
        self,
        modality_logits: Mapping[str, torch.Tensor],
        targets: torch.Tensor,
        present: torch.Tensor,
        modalities: Sequence[str],
    ) -> torch.Tensor:
        """Mean loss of the modality heads over the (sample, modality) pairs that are present;
        computed on the device without reading values back to the host."""
        total = targets.new_zeros((), dtype=torch.float32)
        count = targets.new_zeros((), dtype=torch.float32)
        for i, m in enumerate(modalities):
            logits = modality_logits.get(m)
            if logits is None:
                continue
            weight = present[:, i].to(torch.float32)
            total = total + (self.sample_loss(logits.float(), targets) * weight).sum()
            count = count + weight.sum()
        return total / count.clamp(min=1.0)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Outputs → what the model predicts (class probabilities, or values)."""
        raise NotImplementedError

    def metrics(self, logits: torch.Tensor, targets: torch.Tensor, samples: Rows = None) -> Scores:
        """Scores of a whole set; ``samples`` are the manifest rows (for grouped metrics)."""
        raise NotImplementedError

    def top(self, logits: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per sample, the ``k`` best (label, score) pairs, best first: the classes with the
        highest :meth:`predict` scores."""
        probs = self.predict(logits)
        values, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [
            [(self.classes[int(i)], float(v)) for v, i in zip(row_v, row_i, strict=True)]
            for row_v, row_i in zip(values, indices, strict=True)
        ]


tasks: Registry[Task] = Registry(
    "task",
    builtin_modules=(
        "omnifuse.tasks.classification",
        "omnifuse.tasks.regression",
        "omnifuse.tasks.matching",
    ),
)


def create_task(name: str, classes: Sequence[str] = (), **cfg: Any) -> Task:
    """Build task ``name`` with its ``classes`` and options (``aux_weight``, ...)."""
    factory = tasks.get(name)
    try:
        return factory(classes, **cfg)
    except TypeError as err:
        raise ConfigError(f"bad options for task {name!r}: {err}") from None
