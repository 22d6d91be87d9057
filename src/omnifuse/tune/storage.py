"""Where a study lives, and how trials of a crashed process come back.

A path is an Optuna journal file (no server; processes on one machine, or machines sharing
the file system, work on one study); a URL (``sqlite:///…``, ``postgresql://…``, ``mysql://…``)
is a database, whose heartbeats let Optuna fail the trials of a worker that stopped beating.
A journal has no heartbeat, so each trial records the host and process running it: a trial
still RUNNING whose process on this host is gone is failed (only one process can do so — the
storage refuses to finish a trial twice) and its settings are queued again, so a killed
worker loses no trial and none runs twice.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryFailedTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from omnifuse.errors import ConfigError

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
WORKER_ATTR = "worker"
RETRY_ATTR = "retry_of"
HEARTBEAT_SECONDS = 30


def open_storage(location: str | Path) -> BaseStorage:
    """A journal file at a path, or a database at a URL."""
    text = str(location)
    scheme = text.split(":", 1)[0].split("+", 1)[0] if "://" in text else ""
    if scheme in DATABASE_SCHEMES:
        return RDBStorage(
            text,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=4 * HEARTBEAT_SECONDS,
            failed_trial_callback=RetryFailedTrialCallback(max_retry=3),
        )
    if scheme:
        raise ConfigError(
            f"storage {text!r}: use a journal file path or a database URL "
            f"({', '.join(s + '://' for s in DATABASE_SCHEMES)})"
        )
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def worker_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dead_trials(study: optuna.Study) -> list[int]:
    """Fail this host's RUNNING trials whose process is gone and queue their settings again;
    returns the numbers of the trials recovered here. Database storages do this through
    heartbeats."""
    storage = study._storage
    if not isinstance(storage, JournalStorage):
        optuna.storages.fail_stale_trials(study)
        return []
    host = socket.gethostname()
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(WORKER_ATTR) or {}
        if owner.get("host") != host or _alive(int(owner.get("pid", -1))):
            continue
        try:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another process recovered it first
        study.enqueue_trial(
            trial.params, user_attrs={RETRY_ATTR: trial.number}, skip_if_exists=False
        )
        recovered.append(trial.number)
    return recovered
