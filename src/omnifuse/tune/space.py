"""What a tuning trial chooses: the fusion strategy, its size and dropout, the optimiser's rate
and weight decay, modality dropout and the number of epochs.

The space is one function of an Optuna trial, so a study's trials (in any process) draw from
the same distributions; the choices become a sweep :class:`~omnifuse.sweep.Strategy` and a
:class:`~omnifuse.train.TrainConfig`, which is all the training of a trial needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omnifuse.errors import ConfigError
from omnifuse.sweep.config import Strategy, SweepConfig, fused_strategy
from omnifuse.train import TrainConfig

if TYPE_CHECKING:
    import optuna

DIMS = (64, 128, 256)


@dataclass(frozen=True)
class SearchSpace:
    """The ranges a trial draws from (``lr`` and ``weight_decay`` on a log scale)."""

    fusions: tuple[str, ...]
    dims: tuple[int, ...] = DIMS
    dropout: tuple[float, float] = (0.0, 0.5)
    lr: tuple[float, float] = (1e-4, 1e-2)
    weight_decay: tuple[float, float] = (1e-5, 1e-1)
    modality_dropout: tuple[float, float] = (0.0, 0.5)
    epochs: tuple[int, int] = (5, 30)

    def __post_init__(self) -> None:
        if not self.fusions:
            raise ConfigError("the search space needs at least one fusion")
        for name in ("dropout", "lr", "weight_decay", "modality_dropout", "epochs"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ConfigError(f"{name} range {low}..{high} is empty")
        if self.epochs[0] < 1:
            raise ConfigError("epochs must start at 1 or more")


@dataclass(frozen=True)
class TrialPlan:
    """One trial's strategy and training settings."""

    strategy: Strategy
    train: TrainConfig


def suggest(trial: optuna.Trial, space: SearchSpace, base: SweepConfig) -> TrialPlan:
    """Draw a trial's settings; the dataset's own overrides for a fusion still apply."""
    fusion = trial.suggest_categorical("fusion", list(space.fusions))
    dim = trial.suggest_categorical("dim", list(space.dims))
    dropout = trial.suggest_float("dropout", *space.dropout)
    settings = dataclasses.replace(base, dim=int(dim), dropout=dropout)
    strategy = fused_strategy(str(fusion), settings)
    if len(base.spec.columns) > 1:
        strategy.modality_dropout = trial.suggest_float("modality_dropout", *space.modality_dropout)
    train = dataclasses.replace(
        base.train_config(),
        lr=trial.suggest_float("lr", *space.lr, log=True),
        weight_decay=trial.suggest_float("weight_decay", *space.weight_decay, log=True),
        epochs=trial.suggest_int("epochs", *space.epochs),
    )
    return TrialPlan(strategy, train)


def parse_range(text: str, kind: type[float] | type[int]) -> tuple[float, float]:
    """``"LOW..HIGH"`` (or one value) as a range."""
    parts = text.split("..")
    try:
        values = [kind(p) for p in parts]
    except ValueError:
        raise ConfigError(f"not a range: {text!r} (write LOW..HIGH)") from None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2:
        raise ConfigError(f"not a range: {text!r} (write LOW..HIGH)")
    return values[0], values[1]


def fusion_choices(names: Sequence[str]) -> tuple[str, ...]:
    """The fusions to choose among (``all`` = every registered one)."""
    from omnifuse.sweep.config import resolve_fusions

    return tuple(resolve_fusions(names))
