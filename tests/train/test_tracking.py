"""Experiment tracking of the one training loop, read back with each tool's own reader: the
TensorBoard event files through TensorBoard's ``EventAccumulator`` and the MLflow run through
``MlflowClient`` on a local file store — per-epoch values equal to ``metrics.jsonl``, a resumed
run's curves whole, params, the model folder as artifacts, a failed run marked so."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from omnifuse.errors import ConfigError, MissingDependencyError
from omnifuse.train import Objective, TrainConfig, fit
from omnifuse.train.log import read_metrics_log
from omnifuse.train.recipe import RunConfig, RunOutcome, run
from synthetic_manifests import write_tracks_and_records

ENCODERS = {"track": {"name": "series-cnn"}, "record": {"name": "tabular"}}
EPOCHS = 4
WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def _config(root: Path, manifest: Path, name: str, **train: Any) -> RunConfig:
    return RunConfig.from_dict(
        {
            "data": {"manifest": str(manifest), "target": "label"},
            "encoders": ENCODERS,
            "cache": {"dir": str(root / "cache"), "batch_size": 64},
            "model": {"fusion": "concat", "fusion_cfg": {"dim": 16}, "head_cfg": {"hidden": 16}},
            "train": {
                "epochs": EPOCHS,
                "batch_size": 32,
                "seed": 0,
                "progress": False,
                "patience": None,
                **train,
            },
            "output": str(root / name),
        }
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tracking")
    return root, write_tracks_and_records(root)


@pytest.fixture(scope="module")
def tracked(data: tuple[Path, Path]) -> tuple[RunOutcome, Path]:
    root, manifest = data
    store = root / "mlruns"
    mlflow = {"tracking_uri": str(store), "experiment": "tracks"}
    return run(_config(root, manifest, "concat", mlflow=mlflow)), store


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return lambda store: MlflowClient(tracking_uri=Path(store).as_uri())


def _tag(key: str) -> str:
    """The TensorBoard tag a metrics.jsonl key is written under."""
    split, _, name = key.partition("_")
    return f"{split}/{name}" if name else key


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    return {
        k: v
        for k, v in record.items()
        if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def _check_same_curves(scalars: dict[str, list[tuple[int, float]]], folder: Path) -> None:
    records = read_metrics_log(folder)
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    keys = set().union(*(_numbers(r) for r in records))
    assert {"train_loss", "val_accuracy", "val_loss", "lr"} <= keys
    assert {_tag(k) for k in keys} == set(scalars)
    for key in keys:
        expected = [(r["epoch"], float(r[key])) for r in records if key in r]
        logged = scalars[_tag(key)]
        assert [step for step, _ in logged] == [step for step, _ in expected], key
        for (_, got), (_, want) in zip(logged, expected, strict=True):
            assert got == pytest.approx(want, rel=1e-6, abs=1e-7), key  # float32 in events


def _only_run(client: Any, experiment: str) -> Any:
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    return runs[0]


def _check_metric_history(client: Any, run_id: str, folder: Path) -> None:
    records = read_metrics_log(folder)
    for key in set().union(*(_numbers(r) for r in records)):
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        expected = [(r["epoch"], float(r[key])) for r in records if key in r]
        assert [m.step for m in history] == [step for step, _ in expected], key
        assert [m.value for m in history] == pytest.approx([v for _, v in expected]), key


def test_tensorboard_events_hold_the_metrics_log(tracked: tuple[RunOutcome, Path]) -> None:
    outcome, _ = tracked
    scalars = _scalars(outcome.folder)
    assert "train/loss" in scalars and "val/accuracy" in scalars
    _check_same_curves(scalars, outcome.folder)
    losses = [v for _, v in scalars["train/loss"]]
    assert losses[-1] < losses[0]  # a real run: the curve is the training's


def test_the_mlflow_run_holds_params_curves_and_the_model(
    tracked: tuple[RunOutcome, Path], client: Any, tmp_path: Path
) -> None:
    outcome, store = tracked
    mlflow = client(store)
    found = _only_run(mlflow, "tracks")
    assert found.info.run_name == "concat"  # the model folder's name
    assert found.info.status == "FINISHED"
    params = found.data.params
    assert params["train.epochs"] == str(EPOCHS)
    assert params["train.lr"] == "0.001"
    assert params["train.batch_size"] == "32"
    assert params["model.fusion"] == "concat"
    assert params["model.fusion_cfg.dim"] == "16"
    assert json.loads(params["model.classes"]) == outcome.model.config.classes
    assert "train.mlflow" not in params
    _check_metric_history(mlflow, found.info.run_id, outcome.folder)
    test = mlflow.get_metric_history(found.info.run_id, "test_accuracy")
    assert [m.step for m in test] == [EPOCHS]
    assert test[0].value == pytest.approx(outcome.metrics["test"]["accuracy"])
    listed = {a.path for a in mlflow.list_artifacts(found.info.run_id, "model")}
    assert {"model/config.json", "model/model.safetensors", "model/metrics.json"} <= listed
    copy = Path(mlflow.download_artifacts(found.info.run_id, "model/config.json", str(tmp_path)))
    assert copy.read_bytes() == (outcome.folder / "config.json").read_bytes()


def test_a_resumed_run_keeps_whole_curves(data: tuple[Path, Path], client: Any) -> None:
    root, manifest = data
    store = root / "resumed-mlruns"
    train = {
        "checkpoint_dir": str(root / "resumed-ckpt"),
        "mlflow": {"tracking_uri": str(store), "experiment": "resume", "run_name": "first"},
    }
    run(_config(root, manifest, "resumed", stop_after_epochs=2, **train))
    assert [r["epoch"] for r in read_metrics_log(root / "resumed")] == [1, 2]
    train["mlflow"] = {**train["mlflow"], "run_name": "second"}
    outcome = run(_config(root, manifest, "resumed", resume=True, **train))
    _check_same_curves(_scalars(outcome.folder), outcome.folder)
    mlflow = client(store)
    experiment = mlflow.get_experiment_by_name("resume")
    runs = {r.info.run_name: r for r in mlflow.search_runs([experiment.experiment_id])}
    assert set(runs) == {"first", "second"}
    first = mlflow.get_metric_history(runs["first"].info.run_id, "train_loss")
    assert sorted(m.step for m in first) == [1, 2]
    _check_metric_history(mlflow, runs["second"].info.run_id, outcome.folder)


class _Line(Objective):
    """A least-squares line whose ``on_epoch`` caller may end the run (as a pruner does)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 3, generator=g)
        self.y = self.x.sum(1, keepdim=True)
        self.model = nn.Linear(3, 1)

    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.model.parameters())}]

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        return [list(range(0, 16)), list(range(16, 32))]

    def loss(self, batch: list[int]) -> torch.Tensor:
        return nn.functional.mse_loss(self.model(self.x[batch]), self.y[batch])

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(weights)


def test_a_run_that_raises_is_marked_failed(tmp_path: Path, client: Any) -> None:
    def stop(record: dict[str, Any]) -> None:
        if record["epoch"] == 2:
            raise RuntimeError("pruned")

    config = TrainConfig(
        epochs=5,
        progress=False,
        log_dir=str(tmp_path / "line"),
        mlflow={"tracking_uri": str(tmp_path / "store"), "experiment": "line"},
    )
    with pytest.raises(RuntimeError, match="pruned"):
        fit(_Line(), config, on_epoch=stop)
    found = _only_run(client(tmp_path / "store"), "line")
    assert found.info.status == "FAILED"
    assert found.info.run_name == "line"
    assert found.data.params["train.epochs"] == "5"
    assert "model.fusion" not in found.data.params  # this objective reports no model config
    assert not math.isnan(found.data.metrics["train_loss"])


def test_mlflow_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"train\.mlflow\.tracking_uri"):
        TrainConfig.from_dict({"mlflow": {"tracking_uri": ""}})
    with pytest.raises(ConfigError, match=r"train\.mlflow\.colour"):
        TrainConfig.from_dict({"mlflow": {"tracking_uri": "runs/mlruns", "colour": 1}})
    with pytest.raises(ConfigError, match=r"train\.mlflow"):
        TrainConfig.from_dict({"mlflow": "runs/mlruns"})
    config = TrainConfig.from_dict({"mlflow": {"tracking_uri": "sqlite:///runs/m.db"}})
    assert config.mlflow_settings is not None
    assert config.mlflow_settings.store_uri == "sqlite:///runs/m.db"
    assert config.mlflow_settings.experiment == "omnifuse"


def test_tracking_without_mlflow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    config = TrainConfig(epochs=1, progress=False, mlflow={"tracking_uri": str(tmp_path)})
    with pytest.raises(MissingDependencyError, match=r"omnifuse\[mlflow\]"):
        fit(_Line(), config)
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_only_rank_0_tracks_a_data_parallel_run(tmp_path: Path, client: Any) -> None:
    store = tmp_path / "store"
    command = [
        *TORCHRUN,
        str(WORKER),
        "fusion",
        str(tmp_path / "weights.safetensors"),
        "--epochs",
        "2",
        "--mlflow",
        str(store),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = _only_run(client(store), "ddp")  # one run, not one per process
    assert found.info.status == "FINISHED"
    history = client(store).get_metric_history(found.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2]
