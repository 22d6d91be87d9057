"""``omnifuse train`` → ``eval`` → ``predict`` on a tiny run file, and run-file errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.config import recipes_dir
from omnifuse.data.manifest import load_manifest
from omnifuse.errors import ConfigError
from omnifuse.train.recipe import read_run_config

runner = CliRunner()


def run_file(tmp_path: Path, digits: Path, **changes: Any) -> Path:
    config: dict[str, Any] = {
        "data": {"manifest": str(digits), "target": "label"},
        "encoders": {
            "image": {"name": "cnn-image", "image_size": 16, "channels": [32]},
            "audio": {"name": "logmel-cnn"},
        },
        "cache": {"dir": str(tmp_path / "cache"), "tokens": False},
        "model": {"task": "classification", "fusion": "late-weighted", "fusion_cfg": {"dim": 32}},
        "train": {"epochs": 8, "batch_size": 16, "lr": 0.003, "progress": False, "device": "cpu"},
        "output": str(tmp_path / "model"),
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        config[section][name] = value
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_train_eval_predict_round_trip(tmp_path: Path, digits: Path) -> None:
    result = runner.invoke(app, ["train", "--config", str(run_file(tmp_path, digits))])
    assert result.exit_code == 0, result.output
    model = tmp_path / "model"
    assert {"config.json", "model.safetensors", "metrics.json", "metrics.jsonl"} <= {
        p.name for p in model.iterdir()
    }
    metrics = json.loads((model / "metrics.json").read_text())
    assert set(metrics) >= {"train", "val", "test", "data"}
    assert metrics["data"] == {"manifest": str(digits), "train": 106, "val": 22, "test": 22}
    assert len((model / "metrics.jsonl").read_text().splitlines()) == metrics["train"]["epochs"]
    config = json.loads((model / "config.json").read_text())["model"]
    assert config["encoders"]["image"] == {
        "name": "cnn-image",
        "image_size": 16,
        "channels": [32],
        "seed": 0,
    }

    cached = runner.invoke(
        app,
        ["eval", str(model), str(digits), "--split", "test", "--cache", str(tmp_path / "cache")],
    )
    assert cached.exit_code == 0, cached.output
    assert "confusion matrix" in cached.output
    raw = runner.invoke(app, ["eval", str(model), str(digits), "--split", "test"])
    assert raw.exit_code == 0, raw.output
    accuracy = f"{metrics['test']['accuracy']:.4f}"
    # the encoders rebuilt from their seeds give the cached features: the same scores
    assert f"accuracy  │ {accuracy}" in cached.output
    assert f"accuracy  │ {accuracy}" in raw.output

    sample = load_manifest(digits).split("test")[0]
    both = runner.invoke(
        app, ["predict", str(model), "--image", sample["image"], "--audio", sample["audio"]]
    )
    assert both.exit_code == 0, both.output
    assert "modality weights" in both.output  # late-weighted reports them
    rows = [line for line in both.output.splitlines() if line.startswith("│")]
    assert rows[0].split("│")[1].strip() in [str(d) for d in range(10)]
    audio_only = runner.invoke(
        app, ["predict", str(model), "--audio", sample["audio"], "--top", "2"]
    )
    assert audio_only.exit_code == 0, audio_only.output
    weights = audio_only.output.split("modality weights")[1]
    assert "1.000" in weights and "0.000" in weights  # the absent image gets no weight
    no_text = runner.invoke(app, ["predict", str(model), "--text", "seven"])
    assert no_text.exit_code != 0 and "no text column" in no_text.output


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"train__epochs": 0}, "train.epochs"),
        ({"train__learning_rate": 0.1}, "train.learning_rate"),
        ({"model__fusoin": "concat"}, "model.fusoin"),
        ({"data__size": "big", "data__dataset": "av-digits"}, "data.size"),
        ({"cache__tokens": "yes"}, "cache.tokens"),
        ({"cache__dir": ""}, "cache.dir"),
    ],
)
def test_bad_run_files_name_the_key(
    tmp_path: Path, digits: Path, change: dict[str, Any], key: str
) -> None:
    path = run_file(tmp_path, digits, **change)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        read_run_config(path)


def test_overrides_reach_the_run(tmp_path: Path, digits: Path) -> None:
    path = run_file(tmp_path, digits)
    config = read_run_config(path, ["train.epochs=3", "model.fusion_cfg={dim: 16}"])
    assert config.train.epochs == 3
    assert config.model.fusion_cfg == {"dim": 16}


def test_cli_reports_a_bad_run_file_as_a_config_error(tmp_path: Path, digits: Path) -> None:
    path = run_file(tmp_path, digits, train__epochs=-1)
    result = runner.invoke(app, ["train", "--config", str(path)])
    assert isinstance(result.exception, ConfigError)
    assert "train.epochs" in str(result.exception)


TRAIN_RUN_FILES = sorted(
    path
    for path in recipes_dir().glob("*.yaml")
    if "omnifuse train --config" in path.read_text(encoding="utf-8")
)


def test_train_run_files_are_shipped() -> None:
    assert len(TRAIN_RUN_FILES) >= 3


@pytest.mark.parametrize("path", TRAIN_RUN_FILES, ids=lambda p: p.name)
def test_shipped_run_files_are_valid(path: Path) -> None:
    from omnifuse.fusion import list_fusions
    from omnifuse.tasks import list_tasks

    config = read_run_config(path)
    assert config.model.fusion in list_fusions()
    assert config.model.task in list_tasks()
    assert config.end_to_end == (config.cache is None)
