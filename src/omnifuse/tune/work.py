"""The trial loop each tuning process runs: ask the study for a trial, run it, tell the result,
until the study has its trials or its epoch budget — counted over every process on the study."""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from omnifuse.errors import OmnifuseError
from omnifuse.sweep.data import PreparedData, load_prepared
from omnifuse.tune.config import TuneConfig
from omnifuse.tune.space import suggest
from omnifuse.tune.storage import WORKER_ATTR, open_storage, recover_dead_trials, worker_identity
from omnifuse.tune.trial import run_trial

log = logging.getLogger(__name__)
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_FAILURES_IN_A_ROW = 5
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class TuneError(OmnifuseError):
    """Tuning cannot go on: every recent trial failed."""


def open_study(config: TuneConfig, worker: int = 0) -> optuna.Study:
    """The study (created if new) with a sampler for the objectives: TPE for one, NSGA-II for
    several. Processes sharing a study get differently seeded samplers."""
    seed = config.base.seed
    if config.shared:
        seed = hash((seed, os.getpid(), worker)) % 2**31
    sampler: optuna.samplers.BaseSampler
    if len(config.objectives) > 1:
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=open_storage(config.storage_location),
        study_name=config.study,
        directions=config.directions,
        sampler=sampler,
        load_if_exists=True,
    )


def epochs_spent(study: optuna.Study) -> int:
    done = study.get_trials(deepcopy=False, states=DONE)
    return sum(int(t.user_attrs.get("epochs_run", 0)) for t in done)


def should_stop(study: optuna.Study, config: TuneConfig) -> bool:
    """Enough trials finished or under way, or the epoch budget spent."""
    trials = study.get_trials(deepcopy=False, states=COUNTED)
    if sum(t.state != TrialState.WAITING for t in trials) >= config.trials and not any(
        t.state == TrialState.WAITING for t in trials
    ):
        return True
    return config.budget_epochs is not None and epochs_spent(study) >= config.budget_epochs


def surplus(study: optuna.Study, trial: optuna.Trial, config: TuneConfig) -> bool:
    """Whether trials numbered before this one already make up the study (two processes asked
    at the same moment); such a trial is failed unrun so the study keeps exactly ``trials``."""
    before = [
        t for t in study.get_trials(deepcopy=False, states=COUNTED) if t.number < trial.number
    ]
    return len(before) >= config.trials


def work(config: TuneConfig, data: PreparedData, worker: int = 0) -> list[int]:
    """Run trials until the study is done; returns the numbers of the trials run here."""
    study = open_study(config, worker)
    ran: list[int] = []
    failures: list[str] = []
    while True:
        recover_dead_trials(study)
        if should_stop(study, config):
            return ran
        trial = study.ask()
        trial.set_user_attr(WORKER_ATTR, worker_identity())
        if surplus(study, trial, config):
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            return ran
        ran.append(trial.number)
        plan = suggest(trial, config.space, config.base)
        try:
            score = run_trial(trial, plan, data, config)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        except Exception as err:  # a setting the fusion refuses fails its trial, not the study
            failures.append(f"trial {trial.number}: {type(err).__name__}: {err}")
            trial.set_user_attr("error", failures[-1])
            log.warning("trial %d failed: %s", trial.number, traceback.format_exc(limit=3))
            study.tell(trial, state=TrialState.FAIL)
            if len(failures) >= MAX_FAILURES_IN_A_ROW:
                raise TuneError(
                    f"{len(failures)} trials in a row failed; the last: {failures[-1]}"
                ) from err
            continue
        failures.clear()
        for key, value in score.attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, score.values)


@dataclass(frozen=True)
class TuneWorker:
    """A worker process's recipe (for an engine): load the cached features, run the loop."""

    config: TuneConfig
    threads: int

    def __call__(self) -> Any:
        torch.set_num_threads(self.threads)
        data = load_prepared(self.config.base)

        def run(worker: int) -> list[int]:
            return work(self.config, data, worker)

        return run
