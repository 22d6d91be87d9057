"""Automatic configuration: an Optuna study over fusion strategies and their training settings.

:func:`run_tune` prepares the data as a sweep does (built and encoded once into the feature
cache; processes starting together take turns through a lock file), then runs trials until the
study has ``trials`` finished ones or its epoch budget is spent — in this process, in
``workers`` local processes, or on a Ray cluster's actors (``engine``), all working on the one
study through its storage, so several commands on several machines can share it too. Trials
whose validation curves fall below the median are pruned; the reports, the Pareto plot and the
best trial's model folder are written by whichever process finishes (:mod:`omnifuse.tune.report`).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from omnifuse.engines import Engine, LocalEngine
from omnifuse.sweep.data import build_and_encode, load_prepared
from omnifuse.tune.config import OBJECTIVES, TuneConfig
from omnifuse.tune.report import write_reports
from omnifuse.tune.space import SearchSpace, fusion_choices
from omnifuse.tune.work import TuneError, TuneWorker, open_study, work


@dataclass
class TuneResult:
    paths: dict[str, Path]
    ran: list[int]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created) for the duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_tune(config: TuneConfig, *, engine: Engine | None = None) -> TuneResult:
    """Prepare the data, run trials (here, in local processes or on ``engine``), report."""
    _, cache_dir = config.base.folders()
    with locked(cache_dir.parent / f".{cache_dir.name}.lock"):
        build_and_encode(config.base)
    in_process = engine.in_process if engine is not None else config.workers <= 1
    if in_process:
        threads = torch.get_num_threads()
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            ran = work(config, load_prepared(config.base))
        finally:
            torch.set_num_threads(threads)
    else:
        runner = engine or LocalEngine(config.workers)
        try:
            worker = TuneWorker(config, config.threads or 1)
            ran = sorted(
                n for done in runner.map(worker, list(range(config.workers))) for n in done
            )
        finally:
            if engine is None:
                runner.close()
    paths = write_reports(open_study(config), config)
    return TuneResult(paths, ran)


__all__ = [
    "OBJECTIVES",
    "SearchSpace",
    "TuneConfig",
    "TuneError",
    "TuneResult",
    "fusion_choices",
    "run_tune",
]
