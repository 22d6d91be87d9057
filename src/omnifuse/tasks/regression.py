"""Regression: one or more real-valued targets per sample, mean squared error."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.tasks.base import Rows, Scores, Task, tasks
from omnifuse.tasks.metrics import regression_scores


@tasks.register("regression")
class RegressionTask(Task):
    """``outputs`` real values per sample (a number, a numeric string, or a list of ``outputs``
    numbers); MSE loss. Metrics: MAE, RMSE, R², loss."""

    name = "regression"
    primary_metric = "r2"
    uses_classes = False

    def __init__(
        self, classes: Sequence[str] = (), *, aux_weight: float = 0.0, outputs: int = 1
    ) -> None:
        super().__init__(classes, aux_weight=aux_weight)
        if outputs < 1:
            raise ConfigError(f"outputs must be >= 1, got {outputs}")
        self.outputs = outputs

    @property
    def output_dim(self) -> int:
        return self.outputs

    @classmethod
    def infer_classes(cls, values: Iterable[Any]) -> list[str]:
        return []

    def encode_target(self, value: Any) -> torch.Tensor:
        try:
            number = float(value) if isinstance(value, str) else value
            target = torch.tensor(number, dtype=torch.float32).reshape(-1)
        except (TypeError, ValueError):
            raise ConfigError(f"regression target {value!r} is not a number or list") from None
        if target.numel() != self.outputs or not torch.isfinite(target).all():
            raise ConfigError(
                f"regression target {value!r}: expected {self.outputs} finite value(s)"
            )
        return target

    def sample_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        values = logits.reshape(logits.shape[0], -1)
        return F.mse_loss(
            values, targets.reshape(values.shape).to(values.dtype), reduction="none"
        ).mean(-1)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float()

    def metrics(self, logits: torch.Tensor, targets: torch.Tensor, samples: Rows = None) -> Scores:
        out: dict[str, Any] = dict(regression_scores(targets, self.predict(logits)))
        out["loss"] = (
            float(self.sample_loss(logits.float(), targets).mean()) if len(targets) else 0.0
        )
        out["count"] = len(targets)
        return out

    def top(self, logits: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        values = self.predict(logits).reshape(logits.shape[0], -1)
        return [
            [(f"y{j}" if self.outputs > 1 else "value", float(v)) for j, v in enumerate(row)]
            for row in values
        ]
