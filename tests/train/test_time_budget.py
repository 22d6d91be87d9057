"""``train.max_minutes``: the loop's wall-clock budget, on a clock the test drives (each batch
takes ten seconds of it), so where the run stops is exact."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.train import Objective, TrainConfig, fit
from omnifuse.train import loop as loop_module

SECONDS_PER_BATCH = 10.0


class Clock:
    """A stand-in for ``time.perf_counter`` that moves only when a batch runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedObjective(Objective):
    """Least squares of a linear map; each batch advances ``clock`` and records its loss."""

    def __init__(self, clock: Clock) -> None:
        g = torch.Generator().manual_seed(3)
        self.x = torch.randn(56, 4, generator=g)
        self.y = self.x @ torch.randn(4, 1, generator=g)
        torch.manual_seed(0)
        self.model = nn.Linear(4, 1)
        self.clock = clock
        self.losses: list[float] = []

    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.model.parameters())}]

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        return [list(range(i, i + 8)) for i in range(0, 48, 8)]  # 6 batches

    def loss(self, batch: Sequence[int]) -> torch.Tensor:
        self.clock.now += SECONDS_PER_BATCH
        loss = nn.functional.mse_loss(self.model(self.x[list(batch)]), self.y[list(batch)])
        self.losses.append(float(loss.detach()))
        return loss

    def validate(self) -> dict[str, Any] | None:
        with torch.no_grad():
            return {"loss": float(nn.functional.mse_loss(self.model(self.x[48:]), self.y[48:]))}

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(weights)


def run(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> tuple[Any, TimedObjective]:
    clock = Clock()
    monkeypatch.setattr(loop_module.time, "perf_counter", clock)
    objective = TimedObjective(clock)
    config = TrainConfig(epochs=5, lr=0.05, patience=None, progress=False, metric="loss")
    for key, value in changes.items():
        setattr(config, key, value)
    return fit(objective, config), objective


def test_the_budget_ends_the_run_after_the_first_step_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, objective = run(monkeypatch, max_minutes=0.5)  # 30 s: three batches
    assert result.out_of_time and result.completed
    assert result.steps == 3
    (record,) = result.history
    assert record["batches"] == 3
    assert record["train_loss"] == pytest.approx(sum(objective.losses) / 3)
    assert "val_loss" in record  # the partial epoch is validated like any other


def test_a_budget_across_epochs_keeps_whole_epochs_whole_and_the_best_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, objective = run(monkeypatch, max_minutes=1.5)  # 90 s: one epoch and three batches
    assert result.out_of_time
    assert [r.get("batches") for r in result.history] == [None, 3]
    assert result.steps == 9
    best = min(r["val_loss"] for r in result.history)
    assert objective.validate() == {"loss": pytest.approx(best)}


def test_without_a_budget_or_within_it_every_epoch_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    for budget in (None, 60.0):
        result, _ = run(monkeypatch, max_minutes=budget)
        assert not result.out_of_time
        assert result.steps == 5 * 6 and len(result.history) == 5


@pytest.mark.parametrize("budget", [0, -1.0, "45", True])
def test_a_bad_budget_is_a_config_error_naming_it(budget: object) -> None:
    with pytest.raises(ConfigError, match=r"train\.max_minutes"):
        TrainConfig.from_dict({"max_minutes": budget})
