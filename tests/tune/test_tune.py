"""``omnifuse tune`` on a small manifest of the user's own: trials are drawn, trained and
pruned, the study resumes, several objectives give a Pareto front, and the best trial is a
model folder that loads."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from omnifuse.errors import ConfigError
from omnifuse.models.folder import load_model
from omnifuse.sweep import SweepConfig
from omnifuse.tune import SearchSpace, TuneConfig, run_tune
from omnifuse.tune.trial import hopeless
from omnifuse.tune.work import open_study
from synthetic_manifests import write_tracks_and_records

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _config(root: Path, manifest: Path, **options: object) -> TuneConfig:
    base = SweepConfig(data=str(manifest), out=root / "tune", batch_size=32, progress=False)
    space = SearchSpace(fusions=("concat", "late-mean", "gated"), dims=(16, 32), epochs=(3, 8))
    settings = {"trials": 6, "prune_warmup": 2, "prune_after": 3, **options}
    return TuneConfig(base=base, space=space, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tracks_and_records(tmp_path_factory.mktemp("data"))


def test_a_study_runs_its_trials_and_resumes(tmp_path: Path, manifest: Path) -> None:
    config = _config(tmp_path, manifest)
    first = run_tune(config)
    assert len(first.ran) == 6
    study = open_study(config)
    assert sum(t.state in FINISHED for t in study.get_trials()) == 6
    board = first.paths["markdown"].read_text()
    assert board.count("| complete |") >= 3
    best = json.loads(first.paths["json"].read_text())["best"]
    model = load_model(first.paths["best"])
    assert model.config.fusion == best["fusion"]
    assert best["val_loss"] > 0  # the tie-break among equal validation accuracies
    assert first.paths["history"].stat().st_size > 0
    more = run_tune(_config(tmp_path, manifest, trials=8))
    assert more.ran == [6, 7]  # the same study, two trials more


def test_several_objectives_give_a_pareto_front(tmp_path: Path, manifest: Path) -> None:
    config = _config(tmp_path, manifest, objectives=("accuracy", "latency", "params"), trials=5)
    result = run_tune(config)
    record = json.loads(result.paths["json"].read_text())
    assert record["pareto"] and record["best"]["trial"] in record["pareto"]
    assert result.paths["pareto"].stat().st_size > 0
    assert "yes" in result.paths["csv"].read_text()


def test_an_epoch_budget_stops_the_study(tmp_path: Path, manifest: Path) -> None:
    result = run_tune(_config(tmp_path, manifest, trials=50, budget_epochs=10, prune_after=0))
    record = json.loads(result.paths["json"].read_text())
    assert 10 <= record["epochs_trained"] < 10 + 8
    assert len(result.ran) < 50


def test_hopeless_curves_are_those_below_the_median() -> None:
    config = _config(Path("x"), Path("m.jsonl"))
    finished = [[0.5, 0.6, 0.7], [0.4, 0.8, 0.9], [0.6, 0.7, 0.8]]
    assert not hopeless([0.1], finished, config)  # still warming up
    assert hopeless([0.1, 0.3], finished, config)
    assert not hopeless([0.1, 0.75], finished, config)
    assert not hopeless([0.1, 0.3], finished[:2], config)  # too few finished trials


@pytest.mark.parametrize(
    "options",
    [{"objectives": ("latency",)}, {"objectives": ("speed",)}, {"trials": 0}, {"workers": 0}],
)
def test_bad_settings_are_config_errors(
    tmp_path: Path, manifest: Path, options: dict[str, object]
) -> None:
    with pytest.raises(ConfigError):
        _config(tmp_path, manifest, **options)
