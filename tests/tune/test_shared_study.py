"""Two ``omnifuse tune`` processes on one journal file finish the study's trials between them,
none twice and none lost; a process killed in the middle of a trial is resumed by the next run,
which runs that trial's settings again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from omnifuse.tune.storage import RETRY_ATTR, WORKER_ATTR, open_storage
from synthetic_manifests import write_tracks_and_records

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _command(manifest: Path, out: Path, trials: int, epochs: str) -> list[str]:
    return [
        sys.executable, "-m", "omnifuse", "tune", "--data", str(manifest), "--out", str(out),
        "--storage", str(out / "study.journal"), "--trials", str(trials),
        "--fusions", "concat,late-mean,gated", "--epochs", epochs, "--batch-size", "32",
        "--no-plots",
    ]  # fmt: skip


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMNIFUSE_PROGRESS": "0"}


def _trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(
        study_name="omnifuse-tune", storage=open_storage(out / "study.journal")
    )
    return study.get_trials()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tracks_and_records(tmp_path_factory.mktemp("data"))


def test_two_processes_share_one_study(tmp_path: Path, manifest: Path) -> None:
    out = tmp_path / "tune"
    runs = [
        subprocess.Popen(_command(manifest, out, 8, "3..5"), env=_environment()) for _ in range(2)
    ]
    assert [run.wait(timeout=600) for run in runs] == [0, 0]
    trials = _trials(out)
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == 8
    assert len({t.number for t in finished}) == 8
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 8
    assert len({t.user_attrs[WORKER_ATTR]["pid"] for t in finished}) == 2  # both worked
    assert (out / "best" / "config.json").is_file()


def test_a_killed_process_resumes_without_losing_its_trial(tmp_path: Path, manifest: Path) -> None:
    out = tmp_path / "tune"
    run = subprocess.Popen(_command(manifest, out, 2, "200..200"), env=_environment())
    deadline = time.monotonic() + 300
    running: list[optuna.trial.FrozenTrial] = []
    while not running and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.1)
        if (out / "study.journal").is_file():
            # every parameter suggested ("epochs" comes last): the trial is training
            running = [
                t for t in _trials(out) if t.state == TrialState.RUNNING and "epochs" in t.params
            ]
    assert running, "no trial started"
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    killed = running[0]
    resumed = subprocess.run(
        _command(manifest, out, 2, "200..200"), env=_environment(), timeout=600, check=False
    )
    assert resumed.returncode == 0
    trials = _trials(out)
    assert [t.state for t in trials if t.number == killed.number] == [TrialState.FAIL]
    retries = [t for t in trials if t.user_attrs.get(RETRY_ATTR) == killed.number]
    assert len(retries) == 1 and retries[0].state in FINISHED
    assert retries[0].params == killed.params
    assert sum(t.state in FINISHED for t in trials) == 2
