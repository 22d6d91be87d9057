"""The one training loop on a small objective: gradient accumulation, resumption, early
stopping, logs and every pipeline going through it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from omnifuse.train import Objective, TrainConfig, fit
from omnifuse.train.log import read_metrics_log


class LinearObjective(Objective):
    """Least squares of a linear map on fixed data; validation is the loss on held-out rows."""

    def __init__(self, batch_size: int, seed: int = 0, validate: bool = True) -> None:
        g = torch.Generator().manual_seed(7)
        self.x = torch.randn(64, 5, generator=g)
        self.y = self.x @ torch.randn(5, 1, generator=g) + 0.05 * torch.randn(64, 1, generator=g)
        torch.manual_seed(seed)
        self.model = nn.Linear(5, 1)
        self.batch_size = batch_size
        self.with_validation = validate

    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.model.parameters())}]

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        order = torch.randperm(48, generator=torch.Generator().manual_seed(epoch))
        return [chunk.tolist() for chunk in order.split(self.batch_size)]

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(self.model(self.x[batch]), self.y[batch])

    def validate(self) -> dict[str, Any] | None:
        if not self.with_validation:
            return None
        with torch.no_grad():
            return {"loss": float(nn.functional.mse_loss(self.model(self.x[48:]), self.y[48:]))}

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(weights)


def settings(**changes: Any) -> TrainConfig:
    base: dict[str, Any] = {"epochs": 6, "lr": 0.05, "patience": None, "progress": False}
    return TrainConfig(**{**base, "metric": "loss", **changes})


def test_accumulating_two_half_batches_equals_one_full_batch() -> None:
    whole, halves = LinearObjective(16), LinearObjective(8)
    fit(whole, settings(grad_clip=None))
    result = fit(halves, settings(grad_clip=None, accumulate=2))
    assert result.steps == 6 * 3  # optimizer steps, not batches
    for a, b in zip(whole.model.parameters(), halves.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_resumed_run_is_bit_identical(tmp_path: Path) -> None:
    steady = LinearObjective(8)
    full = fit(steady, settings())
    first = fit(LinearObjective(8), settings(checkpoint_dir=str(tmp_path), stop_after_epochs=2))
    assert not first.completed and len(first.history) == 2
    restarted = LinearObjective(8, seed=99)
    rest = fit(restarted, settings(checkpoint_dir=str(tmp_path), resume=True))
    assert rest.completed
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(rest.history) == drop(full.history)
    for a, b in zip(steady.model.parameters(), restarted.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_without_validation_the_training_loss_picks_the_best_epoch(tmp_path: Path) -> None:
    objective = LinearObjective(8, validate=False)
    result = fit(objective, settings(log_dir=str(tmp_path)))
    assert result.metric == "train_loss"
    losses = [r["train_loss"] for r in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert read_metrics_log(tmp_path) == result.history


def test_earlier_history_stays_at_the_head_of_the_log(tmp_path: Path) -> None:
    earlier = [{"epoch": 1, "stage": "before", "train_loss": 1.0}]
    result = fit(LinearObjective(8), settings(epochs=2, log_dir=str(tmp_path)), history=earlier)
    assert read_metrics_log(tmp_path) == earlier + result.history


def test_an_objective_without_parameters_is_a_config_error() -> None:
    from omnifuse.errors import ConfigError

    objective = LinearObjective(8)
    objective.parameter_groups = lambda: [{"params": []}]  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match="no trainable parameters"):
        fit(objective, settings())


def test_nothing_but_the_loop_owns_an_optimizer_step() -> None:
    """Every training in the package goes through omnifuse.train.loop."""
    root = Path(__file__).parents[2] / "src" / "omnifuse"
    owners = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if "optimizer.step()" in p.read_text(encoding="utf-8")
    ]
    assert owners == ["train/loop.py"]


def test_an_unmeasured_metric_is_a_config_error_naming_the_choices() -> None:
    from omnifuse.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train\.metric 'accuracy' is not measured.*'loss'"):
        fit(LinearObjective(8), settings(), metric="accuracy")
