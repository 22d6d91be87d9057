"""``omnifuse align``: train from a config, evaluate retrieval, zero-shot labels, errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from alignkit import tiny_config
from typer.testing import CliRunner

from omnifuse.align import AlignResult
from omnifuse.cli import app

runner = CliRunner()


def _cache_of(run: AlignResult) -> Path:
    stored = json.loads((run.folder / "config.json").read_text())
    return Path(stored["config"]["cache"]["dir"])


def test_align_trains_from_a_config_and_prints_retrieval(
    tiny_run: AlignResult, tiny_world: Path, tmp_path: Path
) -> None:
    config = tmp_path / "align.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_world, _cache_of(tiny_run))))
    out = tmp_path / "model"
    result = runner.invoke(
        app,
        ["align", "--config", str(config), "--out", str(out), "--set", "train.epochs=2"],
    )
    assert result.exit_code == 0, result.output
    assert "test retrieval" in result.output and "text→image" in result.output
    assert "audio→image" in result.output
    assert (out / "model.safetensors").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["epochs"] for s in metrics["train"]["stages"]] == [2, 2]


def test_align_eval_scores_raw_inputs(tiny_run: AlignResult) -> None:
    result = runner.invoke(app, ["align", "eval", str(tiny_run.folder), "--split", "train"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip().startswith("text→image")]
    assert len(lines) == 1
    r_at_1 = float(lines[0].split()[1])
    assert r_at_1 >= 0.5  # 32 training scenes: chance is 1/32


def test_zero_shot_on_files(tiny_run: AlignResult, tiny_world: Path) -> None:
    rows = [json.loads(line) for line in (tiny_world / "scenes.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"][:3]
    images = [str(tiny_world / r["image"]) for r in train]
    classes = ",".join(r["caption"] for r in train)
    result = runner.invoke(
        app,
        [
            "align",
            "zero-shot",
            str(tiny_run.folder),
            *images,
            "--classes",
            classes,
            "--template",
            "{}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert all(Path(p).name in result.output for p in images)


def test_usage_errors(tiny_run: AlignResult, tmp_path: Path) -> None:
    result = runner.invoke(app, ["align"])
    assert result.exit_code != 0 and "--config" in result.output
    result = runner.invoke(app, ["align", "--data", "world", "--config", "x.yaml"])
    assert result.exit_code != 0
    result = runner.invoke(app, ["align", "zero-shot", str(tiny_run.folder)])
    assert result.exit_code != 0 and "--classes" in result.output
    result = runner.invoke(app, ["align", "eval", str(tmp_path)])
    assert result.exit_code != 0
    assert "not an aligned model" in str(result.exception)


def test_align_a_users_manifest_with_encoders_on_the_command_line(
    tiny_run: AlignResult, tiny_world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    args = ["align", "--data", str(tiny_world / "scenes.jsonl"), "--out", str(out)]
    args += ["--encoder", "caption=minilm", "--encoder", "image=cnn-image"]
    args += ["--encoder", "image.image_size=32", "--encoder", "image.channels=[16]"]
    args += ["--encoder", "caption_audio=logmel-cnn", "--group-by", "caption"]
    args += ["--set", "train.epochs=2", "--set", f"cache.dir={_cache_of(tiny_run)}"]
    args += ["--set", "head.dim=32", "--set", "head.hidden=64", "--set", "head.pool=mean"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["pairs"] == [["caption", "image"]]
    assert config["bind"] == [{"column": "caption_audio", "anchor": "caption"}]
    assert "audio→image" in result.output
    bad = runner.invoke(app, ["align", "--data", str(tmp_path / "none.jsonl"), "-o", str(out)])
    assert "neither a built-in recipe" in str(bad.exception)
