"""Cross-modal consistency on the tiny aligned world model: the calibration written beside it,
checks of written and spoken captions against images, the command line and the HTTP route."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from alignkit import tiny_config
from typer.testing import CliRunner

from omnifuse.align import AlignResult, load_aligned
from omnifuse.align.consistency import (
    CALIBRATION_FILE,
    ConsistencyChecker,
    NotCalibratedError,
    calibrate,
    read_calibration,
)
from omnifuse.cli import app
from omnifuse.errors import InvalidValueError

runner = CliRunner()
SCENES = 12
"""Calibration scenes: the first of the training split, which the tiny model has learnt."""
LOCAL = "http://127.0.0.1"
"""Where the in-process client says it calls: a name the server answers to."""


@pytest.fixture(scope="module")
def calibrated(tiny_run: AlignResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny aligned model, calibrated on its first training scenes."""
    folder = tmp_path_factory.mktemp("consistency") / "model"
    shutil.copytree(tiny_run.folder, folder)
    calibrate(folder, split="train", limit=SCENES)
    return folder


def rows_of(world: Path, split: str = "train") -> list[dict[str, Any]]:
    lines = (world / "scenes.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split][:SCENES]


def test_the_calibration_lies_beside_the_model_and_loads_with_it(calibrated: Path) -> None:
    calibration = read_calibration(calibrated)
    assert set(calibration.pairs) == {("image", "text"), ("audio", "image"), ("audio", "text")}
    assert calibration.premise is not None and calibration.source["scenes"] == SCENES
    for pair in calibration.pairs.values():
        assert 0 < pair.threshold < 1 and pair.platt.slope > 0
        assert {"colour", "shape", "count"} <= set(pair.val["per_swap"])
        assert pair.val["positives"] == SCENES
    # the learnt training scenes: another scene's caption is told from the scene's own
    assert calibration.pair("text", "image").val["auroc_other"] > 0.9
    stored = json.loads((calibrated / CALIBRATION_FILE).read_text())
    assert stored["format"] == "omnifuse-consistency/1" and len(stored["pairs"]) == 3


def test_own_captions_are_consistent_and_other_scenes_captions_are_not(
    calibrated: Path, tiny_world: Path
) -> None:
    checker = ConsistencyChecker.load(calibrated)
    rows = rows_of(tiny_world)
    own, other = [], []
    for i, row in enumerate(rows):
        image = str(tiny_world / row["image"])
        stranger = next(r for r in rows[i + 1 :] + rows[:i] if r["caption"] != row["caption"])
        own.append(checker.check({"text": row["caption"], "image": image}))
        other.append(checker.check({"text": stranger["caption"], "image": image}))
    assert sum(r.consistent for r in own) >= SCENES - 2
    assert sum(not r.consistent for r in other) >= SCENES - 2
    assert np.mean([r.probability for r in own]) > np.mean([r.probability for r in other]) + 0.3
    # the pieces agree: the similarity is the embeddings' cosine, the probability its Platt map
    model = load_aligned(calibrated)
    first = rows[0]
    vectors = [
        model.embed("text", [first["caption"]])[0],
        model.embed("image", [str(tiny_world / first["image"])])[0],
    ]
    (pair,) = own[0].pairs
    assert pair.similarity == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-5)
    platt = read_calibration(calibrated).pair("text", "image").platt
    assert pair.probability == pytest.approx(float(platt.probability(pair.similarity)))


def test_three_inputs_give_three_pairs_and_the_weakest_decides(
    calibrated: Path, tiny_world: Path
) -> None:
    checker = ConsistencyChecker.load(calibrated)
    row = rows_of(tiny_world)[1]
    result = checker.check(
        {
            "text": row["caption"],
            "image": str(tiny_world / row["image"]),
            "audio": str(tiny_world / row["caption_audio"]),
        }
    )
    assert [(p.a, p.b) for p in result.pairs] == [
        ("text", "image"),
        ("text", "audio"),
        ("image", "audio"),
    ]
    assert result.probability == min(p.probability for p in result.pairs)
    assert result.consistent == all(p.consistent for p in result.pairs)
    with pytest.raises(InvalidValueError, match="two or more"):
        checker.check({"text": row["caption"]})
    with pytest.raises(InvalidValueError, match="two or more"):
        checker.check({"text": row["caption"], "image": None})


def test_a_model_without_calibration_says_how_to_make_one(tiny_run: AlignResult) -> None:
    with pytest.raises(NotCalibratedError, match="omnifuse consistency calibrate"):
        ConsistencyChecker.load(tiny_run.folder)


def test_command_line_check_and_calibration(
    calibrated: Path, tiny_world: Path, tmp_path: Path
) -> None:
    row, stranger = rows_of(tiny_world)[2], rows_of(tiny_world)[3]
    image = str(tiny_world / row["image"])
    base = ["consistency", "--align", str(calibrated), "--image", image, "--json"]
    same = runner.invoke(app, [*base, "--text", row["caption"]])
    assert same.exit_code == 0, same.output
    payload = json.loads(same.output)
    assert payload["verdict"] == "consistent" and payload["pairs"][0]["a"] == "text"
    differ = runner.invoke(app, [*base, "--text", stranger["caption"]])
    assert differ.exit_code == 1 and json.loads(differ.output)["verdict"] == "inconsistent"
    table = runner.invoke(
        app, ["consistency", "--align", str(calibrated), "--text", row["caption"], "--image", image]
    )
    assert "text–image" in table.output and "overall: consistent" in table.output
    alone = runner.invoke(app, ["consistency", "--align", str(calibrated), "--image", image])
    assert alone.exit_code != 0 and "two or more" in str(alone.exception)
    assert runner.invoke(app, ["consistency", "--text", "a red circle"]).exit_code != 0
    copy = tmp_path / "model"
    shutil.copytree(calibrated, copy)
    (copy / CALIBRATION_FILE).unlink()
    fitted = runner.invoke(
        app, ["consistency", "calibrate", "--align", str(copy), "--split", "train", "--limit", "6"]
    )
    assert fitted.exit_code == 0, fitted.output
    assert "image–text" in fitted.output and read_calibration(copy).source["scenes"] == 6


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_http_route_answers_pairs_and_refuses_bad_requests(
    calibrated: Path, tiny_run: AlignResult, tiny_world: Path
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from omnifuse.serve import ServeConfig, create_app

    row = rows_of(tiny_world)[4]
    image = tiny_world / row["image"]
    config = ServeConfig(align_dir=calibrated, allowed_root=tiny_world)
    with TestClient(create_app(config), base_url=LOCAL) as client:
        ok = client.post("/v1/consistency", json={"text": row["caption"], "image": data_uri(image)})
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["object"] == "consistency" and body["model"] == calibrated.name
        assert body["verdict"] == "consistent" and body["pairs"][0]["a"] == "text"
        by_path = client.post(
            "/v1/consistency",
            json={
                "text": row["caption"],
                "image": {"path": str(image)},
                "audio": {"path": str(tiny_world / row["caption_audio"])},
            },
        )
        assert by_path.status_code == 200 and len(by_path.json()["pairs"]) == 3
        one = client.post("/v1/consistency", json={"text": row["caption"]})
        assert one.status_code == 422 and "two or more" in one.json()["error"]["message"]
        garbage = "data:image/png;base64," + base64.b64encode(b"not a png").decode()
        bad = client.post("/v1/consistency", json={"text": "a red circle", "image": garbage})
        assert 400 <= bad.status_code < 500
        outside = client.post(
            "/v1/consistency", json={"text": "a", "image": {"path": "/etc/passwd"}}
        )
        assert 400 <= outside.status_code < 500
        named = client.post(
            "/v1/consistency", json={"model": "other", "text": "a", "image": data_uri(image)}
        )
        assert named.status_code == 404
        assert "/v1/consistency" in client.get("/openapi.json").json()["paths"]
    with TestClient(create_app(ServeConfig()), base_url=LOCAL) as bare:
        none = bare.post("/v1/consistency", json={"text": "a", "image": data_uri(image)})
        assert none.status_code == 404 and none.json()["error"]["code"] == "no_aligned_model"
    uncalibrated_app = create_app(ServeConfig(align_dir=tiny_run.folder))
    with TestClient(uncalibrated_app, base_url=LOCAL) as uncalibrated:
        later = uncalibrated.post("/v1/consistency", json={"text": "a", "image": data_uri(image)})
        assert later.status_code == 503 and later.json()["error"]["code"] == "not_calibrated"


def test_training_with_edits_writes_a_calibrated_aligned_model(
    tiny_run: AlignResult, tiny_world: Path, tmp_path: Path
) -> None:
    config = tmp_path / "consistency.yaml"
    raw = tiny_config(tiny_world, tmp_path / "cache")
    raw["encoders"]["image"] = {"name": "effnet-lite0", "image_size": 64, "center_crop": False}
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "model"
    args = ["consistency", "train", "--config", str(config), "--out", str(out), "--epochs", "12"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pairs: 12 epochs" in result.output and "val AUROC against edits" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["name"] for s in metrics["train"]["stages"]] == ["pairs", "bind:caption_audio"]
    train_rows = metrics["data"]["train"]
    assert 3 * train_rows <= metrics["train"]["edits"]["train"] <= 4 * train_rows
    calibration = read_calibration(out)  # on 4 unseen scenes: what the model can tell apart
    assert calibration.source["split"] == "val" and ("image", "text") in calibration.pairs
    skipped = calibration.source.get("skipped", {})
    assert set(calibration.pairs) | {tuple(sorted(k.split("–"))) for k in skipped} == {
        ("image", "text"),
        ("audio", "image"),
        ("audio", "text"),
    }
    assert set(load_aligned(out).modalities) == {"text", "image", "audio"}
    both = runner.invoke(app, ["consistency", "train", "--config", str(config), "--align", "x"])
    assert both.exit_code != 0 and "either --config" in both.output


def test_edits_of_a_split_hold_captions_and_drawn_scenes(
    tiny_run: AlignResult, tiny_world: Path
) -> None:
    from omnifuse.align.consistency.negatives import make_edits
    from omnifuse.align.consistency.train import recipe_of
    from omnifuse.align.data import load_training_data

    _, splits = load_training_data(recipe_of(tiny_run.folder), tiny_run.folder)
    model = load_aligned(tiny_run.folder)
    edits = make_edits(model, splits["train"], 0, variants=2, seed=0, render_size=48)
    rows = len(splits["train"])
    assert edits.images is not None and len(edits.images.pooled) == len(edits) > 3 * rows
    assert edits.captions.pooled.shape == (len(edits), 384)
    assert set(edits.kinds) == {"colour", "shape", "count", "relation"}
    for row in range(rows):
        mine = [t for t, o in zip(edits.texts, edits.owner.tolist(), strict=True) if o == row]
        assert len(mine) == len(set(mine)) and splits["train"].samples[row]["caption"] not in mine
    assert edits.of_rows([0, 1]) == [i for i, o in enumerate(edits.owner.tolist()) if o in (0, 1)]
