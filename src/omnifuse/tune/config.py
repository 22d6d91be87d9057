"""A tuning run's settings: the data side is a sweep's (dataset, encoders, cache, batch size,
seed), the rest says what to search, for how long and towards which objectives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from omnifuse.errors import ConfigError
from omnifuse.sweep.config import SweepConfig
from omnifuse.tune.space import SearchSpace

Direction = Literal["maximize", "minimize"]
OBJECTIVES: dict[str, Direction] = {
    "accuracy": "maximize",
    "latency": "minimize",
    "params": "minimize",
}


@dataclass
class TuneConfig:
    """- ``trials``: finished trials (completed or pruned) the study should reach, counted over
      every process working on it;
    - ``objectives``: ``accuracy`` (the validation metric), ``latency`` (ms for one sample),
      ``params``; more than one gives a Pareto front (NSGA-II), one a TPE search;
    - ``storage``: a journal file path or a database URL (default: ``OUT/study.journal``);
    - ``budget_epochs``: stop starting trials once the finished ones trained this many epochs
      in all (how a tuning run is given a sweep's budget);
    - pruning: a trial is stopped after ``prune_warmup`` epochs when its best validation score
      so far is below the median of the completed trials' at the same epoch, once
      ``prune_after`` trials have completed (0 turns pruning off);
    - ``workers``: trial processes this command starts (each with ``threads`` torch threads).
    """

    base: SweepConfig
    space: SearchSpace
    trials: int = 20
    objectives: tuple[str, ...] = ("accuracy",)
    storage: str | None = None
    study: str = "omnifuse-tune"
    budget_epochs: int | None = None
    prune_warmup: int = 3
    prune_after: int = 4
    workers: int = 1
    threads: int | None = None
    progress: bool = True
    plots: bool = True

    def __post_init__(self) -> None:
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown or not self.objectives:
            raise ConfigError(
                f"objectives {list(self.objectives)}: choose from {', '.join(OBJECTIVES)}"
            )
        if "accuracy" not in self.objectives:
            raise ConfigError("objectives must include accuracy")
        if self.trials < 1:
            raise ConfigError("trials must be 1 or more")
        if self.budget_epochs is not None and self.budget_epochs < 1:
            raise ConfigError("budget_epochs must be 1 or more")
        if self.workers < 1:
            raise ConfigError("workers must be 1 or more")

    @property
    def out(self) -> Path:
        return self.base.out

    @property
    def storage_location(self) -> str:
        return self.storage or str(self.out / "study.journal")

    @property
    def directions(self) -> list[Direction]:
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def shared(self) -> bool:
        """Whether other processes may work on the study (then samplers are seeded apart)."""
        return self.storage is not None or self.workers > 1
