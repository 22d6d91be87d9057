"""Knowledge distillation: a (small) student fusion model learns from a trained teacher's
softened class probabilities as well as from the labels (Hinton et al., 2015).

The loss is ``alpha · task loss + (1 − alpha) · T² · KL(teacher_T ‖ student_T)`` where ``_T``
are the softmax at temperature ``T``. The teacher sees each batch as the student does before
modality dropout (all the sample's modalities), runs in eval mode without gradients, and
reads the batch through its own ``inputs_of``: cached features when its columns and feature
sizes match the student's cache, or raw inputs through its own encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from omnifuse.errors import ConfigError
from omnifuse.models.fusion_model import FusionModel


@dataclass
class DistillSection:
    """The run file's ``distill`` section: the teacher's model folder, the temperature and the
    weight of the label loss."""

    teacher: str
    temperature: float = 2.0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"distill.temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"distill.alpha must be in [0, 1], got {self.alpha}")


class Distillation:
    """A loaded teacher and the distillation loss of a student against it."""

    def __init__(self, teacher: FusionModel, temperature: float = 2.0, alpha: float = 0.5) -> None:
        self.teacher = teacher.eval()
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha

    @classmethod
    def load(cls, section: DistillSection) -> Distillation:
        from omnifuse.models.folder import load_model

        if not Path(section.teacher).is_dir():
            raise ConfigError(f"distill.teacher: no model folder at {section.teacher}")
        return cls(load_model(section.teacher), section.temperature, section.alpha)

    def check(self, student: FusionModel) -> None:
        """The teacher must be a classifier over the student's classes, in the same order."""
        if student.config.task != "classification" or self.teacher.config.task != "classification":
            raise ConfigError("distillation needs classification models (teacher and student)")
        if list(self.teacher.config.classes) != list(student.config.classes):
            raise ConfigError(
                f"the teacher's classes {self.teacher.config.classes} differ from the "
                f"student's {student.config.classes}"
            )
        for column in self.teacher.modalities:
            size = self.teacher.config.modalities[column]
            if student.config.modalities.get(column, size) != size:
                raise ConfigError(
                    f"the teacher reads {size}-d features of {column!r}, the student's data "
                    f"has {student.config.modalities[column]}-d ones (use the same encoders)"
                )

    def loss(
        self, student_logits: torch.Tensor, task_loss: torch.Tensor, batch: Any
    ) -> torch.Tensor:
        with torch.no_grad():
            device = student_logits.device
            teacher_logits = self.teacher(*self.teacher.inputs_of(batch, device)).logits
        t = self.temperature
        soft = F.kl_div(
            F.log_softmax(student_logits.float() / t, dim=-1),
            F.log_softmax(teacher_logits.float() / t, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        return self.alpha * task_loss + (1.0 - self.alpha) * t * t * soft
