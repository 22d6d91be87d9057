"""Distillation as an option of a training run: a concat student learns from a trained
transformer teacher's soft labels (with no label loss at all it still learns the task, and
agrees with its teacher); a teacher over other classes is a typed error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from omnifuse.errors import ConfigError
from omnifuse.models.folder import load_model
from omnifuse.train.recipe import RunConfig, run
from synthetic_manifests import write_tracks_and_records

ENCODERS = {"track": {"name": "series-cnn"}, "record": {"name": "tabular"}}


def _run(root: Path, manifest: Path, name: str, fusion: str, **extra: Any) -> dict[str, Any]:
    config = RunConfig.from_dict(
        {
            "data": {"manifest": str(manifest), "target": "label"},
            "encoders": ENCODERS,
            "cache": {"dir": str(root / "cache"), "batch_size": 32},
            "model": {"fusion": fusion, "fusion_cfg": {"dim": 32}, "head_cfg": {"hidden": 32}},
            "train": {"epochs": 25, "batch_size": 32, "seed": 0, "progress": False},
            "output": str(root / name),
            **extra,
        }
    )
    return run(config).metrics


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("distill")
    manifest = write_tracks_and_records(root)
    metrics = _run(root, manifest, "teacher", "transformer")
    assert metrics["test"]["accuracy"] > 0.8, metrics["test"]
    return root, manifest


def test_a_student_learns_from_soft_labels_alone(trained: tuple[Path, Path]) -> None:
    root, manifest = trained
    distill = {"teacher": str(root / "teacher"), "temperature": 2.0, "alpha": 0.0}
    metrics = _run(root, manifest, "student", "concat", distill=distill)
    assert metrics["test"]["accuracy"] > 0.75, metrics["test"]
    teacher, student = load_model(root / "teacher"), load_model(root / "student")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    samples = [
        {"track": r["track"], "record": {"height": r["height"], "mount": r["mount"]}}
        for r in rows
        if r["split"] == "test"
    ]
    with torch.inference_mode():
        taught = teacher.predict_raw(samples).logits.argmax(1)
        learned = student.predict_raw(samples).logits.argmax(1)
    assert float((taught == learned).float().mean()) > 0.85


def test_a_teacher_of_other_classes_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, manifest = trained
    other = tmp_path / "other.jsonl"
    other.write_text(
        manifest.read_text().replace('"label": "up"', '"label": "rising"'), encoding="utf-8"
    )
    for schema in manifest.parent.glob("*.schema.json"):
        (tmp_path / schema.name.replace("tracks", "other")).write_text(schema.read_text())
    distill = {"teacher": str(root / "teacher")}
    with pytest.raises(ConfigError, match="classes"):
        _run(tmp_path, other, "student", "concat", distill=distill)
    with pytest.raises(ConfigError, match="alpha"):
        _run(tmp_path, manifest, "x", "concat", distill={"teacher": "t", "alpha": 2})
