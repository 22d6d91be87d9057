"""Single-label classification, VQA as answer classification, and multi-label classification."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.tasks.base import Rows, Scores, Task, tasks
from omnifuse.tasks.metrics import (
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    macro_scores,
    multilabel_scores,
    per_class_scores,
    to_numpy,
)


@tasks.register("classification")
class ClassificationTask(Task):
    """One class per sample: cross-entropy (optionally label-smoothed) over class logits.

    Metrics: accuracy, macro precision/recall/F1, expected calibration error, loss, the confusion
    matrix (rows: target) and per-class scores.
    """

    name = "classification"

    def __init__(
        self, classes: Sequence[str] = (), *, aux_weight: float = 0.5, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(classes, aux_weight=aux_weight)
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def encode_target(self, value: Any) -> torch.Tensor:
        return torch.tensor(self.class_index(value), dtype=torch.long)

    def sample_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits, targets, reduction="none", label_smoothing=self.label_smoothing
        )

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1)

    def metrics(self, logits: torch.Tensor, targets: torch.Tensor, samples: Rows = None) -> Scores:
        logits = logits.float()
        probs = self.predict(logits)
        predicted = probs.argmax(dim=-1)
        confusion = confusion_matrix(targets, predicted, len(self.classes))
        macro = macro_scores(targets, predicted, len(self.classes))
        per_class = per_class_scores(confusion)
        return {
            "accuracy": accuracy(targets, predicted),
            "macro_f1": macro["f1"],
            "precision": macro["precision"],
            "recall": macro["recall"],
            "ece": expected_calibration_error(probs, targets),
            "loss": float(F.cross_entropy(logits, targets)) if len(targets) else 0.0,
            "count": len(targets),
            "classes": list(self.classes),
            "confusion": confusion.tolist(),
            "per_class": {
                c: {k: float(per_class[k][i]) for k in ("precision", "recall", "f1", "support")}
                for i, c in enumerate(self.classes)
            },
        }


@tasks.register("vqa")
class VQATask(ClassificationTask):
    """Visual question answering as classification over the answer vocabulary; adds accuracy per
    question type when the manifest rows have a ``qtype`` (column set by ``group_by``)."""

    name = "vqa"

    def __init__(
        self,
        classes: Sequence[str] = (),
        *,
        aux_weight: float = 0.5,
        label_smoothing: float = 0.0,
        group_by: str = "qtype",
    ) -> None:
        super().__init__(classes, aux_weight=aux_weight, label_smoothing=label_smoothing)
        self.group_by = group_by

    def metrics(self, logits: torch.Tensor, targets: torch.Tensor, samples: Rows = None) -> Scores:
        out = super().metrics(logits, targets, samples)
        if samples is not None and any(self.group_by in s for s in samples):
            predicted = to_numpy(logits.argmax(dim=-1))
            out[f"accuracy_by_{self.group_by}"] = grouped_accuracy(
                to_numpy(targets), predicted, [s.get(self.group_by) for s in samples]
            )
        return out


def grouped_accuracy(
    targets: np.ndarray, predicted: np.ndarray, groups: Sequence[Any]
) -> dict[str, float]:
    """Accuracy within each group (samples without a group are left out), groups sorted."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        if group is not None:
            members[str(group)].append(i)
    return {g: float(np.mean(targets[idx] == predicted[idx])) for g, idx in sorted(members.items())}


def label_set(value: Any) -> list[str]:
    """A multi-label value — a list, or one string with labels separated by ``|`` — as names."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split("|") if part.strip()]


@tasks.register("multilabel")
class MultilabelTask(Task):
    """Any number of classes per sample: binary cross-entropy on each class logit.

    Labels are lists or ``|``-separated strings. A class is predicted when its probability
    reaches ``threshold``. Metrics: micro and macro F1, subset accuracy, loss.
    """

    name = "multilabel"
    primary_metric = "micro_f1"

    def __init__(
        self, classes: Sequence[str] = (), *, aux_weight: float = 0.5, threshold: float = 0.5
    ) -> None:
        super().__init__(classes, aux_weight=aux_weight)
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold

    @classmethod
    def infer_classes(cls, values: Iterable[Any]) -> list[str]:
        return sorted({label for v in values for label in label_set(v)})

    def encode_target(self, value: Any) -> torch.Tensor:
        target = torch.zeros(len(self.classes))
        for label in label_set(value):
            target[self.class_index(label)] = 1.0
        return target

    def sample_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        losses = F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), reduction="none"
        )
        return losses.mean(dim=-1)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    def metrics(self, logits: torch.Tensor, targets: torch.Tensor, samples: Rows = None) -> Scores:
        logits = logits.float()
        predicted = self.predict(logits) >= self.threshold
        out: dict[str, Any] = dict(multilabel_scores(targets, predicted))
        out["loss"] = float(self.sample_loss(logits, targets).mean()) if len(targets) else 0.0
        out["count"] = len(targets)
        out["classes"] = list(self.classes)
        return out
