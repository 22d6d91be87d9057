"""End to end on a tiny built ``world``: ``omnifuse projector train`` (captions, spoken-question
VQA, video captions), the model folder, scores, ``load_captioner``/``load_answerer`` on raw
files, ``omnifuse caption`` and ``omnifuse projector eval|answer``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.data.builders import build
from omnifuse.data.manifest import load_manifest
from omnifuse.data.world.language import QTYPES
from omnifuse.errors import ConfigError, InputError
from omnifuse.eval.text_metrics import caption_report
from omnifuse.projector import describe_clip, load_answerer, load_captioner
from omnifuse.projector.config import ProjectorConfig
from omnifuse.projector.data import lm_corpus

RUNNER = CliRunner()
TINY_LM = {
    "kind": "builtin",
    "size": {"dim": 32, "layers": 1, "heads": 2, "max_len": 96},
    "pretrain": {"epochs": 2, "batch_size": 32},
}
TINY_TRAIN = {"epochs": 2, "batch_size": 8, "lr": 0.003, "progress": False}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    build("world", folder, seed=0, size=10, video_clips=4, video_size=32, video_seconds=1.0)
    return folder


def run_config(world: Path, out: Path, **changes: Any) -> Path:
    """A tiny caption run file (EfficientNet at 64 px: 4 grid tokens), changed by ``changes``.
    Every run shares one feature cache (content-keyed, so each image is encoded once)."""
    config: dict[str, Any] = {
        "task": "caption",
        "data": {"manifest": str(world / "scenes.jsonl")},
        "encoders": {"image": {"name": "effnet-lite0", "image_size": 64}},
        "cache": {"dir": str(world.parent / f"{world.name}-cache"), "batch_size": 16},
        "lm": TINY_LM,
        "projector": {"kind": "linear", "tokens": {"image": 4}},
        "target": "caption",
        "train": TINY_TRAIN,
        "max_tokens": 12,
        "output": str(out),
    }
    config.update(changes)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def train_cli(config: Path, *extra: str) -> Path:
    result = RUNNER.invoke(app, ["projector", "train", "--config", str(config), *extra])
    assert result.exit_code == 0, result.output
    return Path(yaml.safe_load(config.read_text())["output"])


@pytest.fixture(scope="module")
def captioner_dir(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "caption"
    return train_cli(run_config(world, out))


def test_caption_run_writes_a_model_folder_with_scores(captioner_dir: Path, world: Path) -> None:
    names = {p.name for p in captioner_dir.iterdir()}
    assert {"config.json", "model.safetensors", "metrics.json", "metrics.jsonl", "lm"} <= names
    epochs = [
        json.loads(line) for line in (captioner_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert [e["epoch"] for e in epochs] == [1, 2] and all("val_loss" in e for e in epochs)
    metrics = json.loads((captioner_dir / "metrics.json").read_text())
    scenes = load_manifest(world / "scenes.jsonl").samples
    assert metrics["data"]["train"] == sum(s["split"] == "train" for s in scenes)
    for split in ("val", "test"):
        scores = metrics[split]
        assert scores["count"] == sum(s["split"] == split for s in scenes)
        examples = scores["examples"]
        expected = caption_report(
            [e["generated"] for e in examples], [[e["target"]] for e in examples]
        )
        for key, value in expected.items():
            assert scores[key] == pytest.approx(value)
        assert 0.0 <= scores["bleu4"] <= 1.0 and 0.0 <= scores["rouge_l"] <= 1.0


def test_load_captioner_captions_raw_images_as_in_evaluation(
    captioner_dir: Path, world: Path
) -> None:
    captioner = load_captioner(captioner_dir)
    test_rows = [s for s in load_manifest(world / "scenes.jsonl").samples if s["split"] == "test"]
    captions = captioner.caption([row["image"] for row in test_rows])
    metrics = json.loads((captioner_dir / "metrics.json").read_text())
    assert captions == [e["generated"] for e in metrics["test"]["examples"]]
    assert all(isinstance(c, str) and len(c.split()) <= 12 for c in captions)
    assert captioner.caption([]) == []


def test_captioner_rejects_bad_inputs_and_wrong_folders(
    captioner_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InputError, match=r"broken\.png"):
        load_captioner(captioner_dir).caption([broken])
    with pytest.raises(ConfigError, match="not a question answerer"):
        load_answerer(captioner_dir)
    with pytest.raises(ConfigError, match="not a projector folder"):
        load_captioner(tmp_path)


def test_caption_and_eval_commands(captioner_dir: Path, world: Path) -> None:
    image = str(world / "images" / "scene-00000.png")
    expected = load_captioner(captioner_dir).caption([image])[0]
    result = RUNNER.invoke(app, ["caption", image, "--model", str(captioner_dir)])
    assert result.exit_code == 0, result.output
    assert expected in result.output
    result = RUNNER.invoke(app, ["projector", "eval", str(captioner_dir), "--split", "val"])
    assert result.exit_code == 0, result.output
    assert "bleu4" in result.output and "cider" in result.output


def test_spoken_question_vqa_end_to_end(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "vqa"
    config = run_config(
        world,
        out,
        task="vqa",
        data={"manifest": str(world / "vqa.jsonl")},
        encoders={
            "image": {"name": "effnet-lite0", "image_size": 64},
            "question_audio": {"name": "logmel-cnn"},
        },
        projector={"kind": "mlp2", "tokens": {"image": 4, "question_audio": 3}},
        target="answer",
        max_tokens=4,
    )
    folder = train_cli(config)
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = load_manifest(world / "vqa.jsonl").samples
    test_rows = [r for r in rows if r["split"] == "test"]
    assert metrics["test"]["count"] == len(test_rows)
    assert set(metrics["test"]["accuracy_by_qtype"]) <= set(QTYPES)
    assert metrics["test"]["accuracy"] == metrics["test"]["exact_match"]
    answerer = load_answerer(folder)
    answers = answerer.answer(
        [r["image"] for r in test_rows], [r["question_audio"] for r in test_rows]
    )
    assert answers == [e["generated"] for e in metrics["test"]["examples"]][: len(answers)]
    row = test_rows[0]
    result = RUNNER.invoke(
        app, ["projector", "answer", row["image"], row["question_audio"], "--model", str(folder)]
    )
    assert result.exit_code == 0, result.output
    assert answers[0] in result.output
    with pytest.raises(ConfigError, match="one question per image"):
        answerer.answer([row["image"]], [])


def test_describe_clip_names_both_movers_and_the_sounding_one(world: Path) -> None:
    row = load_manifest(world / "video.jsonl").samples[0]
    a, b = row["sounding"], row["distractor"]
    text = describe_clip(row)
    assert text == (
        f"a {a['colour']} {a['shape']} moves {a['direction']} and makes a sound "
        f"while a {b['colour']} {b['shape']} moves {b['direction']}"
    )
    assert row["event"] == f"{a['shape']}-moves-{a['direction']}"
    with pytest.raises(ConfigError, match="clip_description"):
        describe_clip({"id": "x"})


@pytest.mark.slow
def test_video_captioning_from_frames_and_soundtrack(world: Path, tmp_path: Path) -> None:
    out = tmp_path / "video"
    config = run_config(
        world,
        out,
        task="video-caption",
        data={"manifest": str(world / "video.jsonl")},
        encoders={
            "video": {
                "name": "video",
                "num_frames": 4,
                "image_cfg": {"image_size": 32},
                "audio_cfg": {"pad_to_30s": False},
            }
        },
        projector={"kind": "linear", "tokens": {"video": 4}},
        target="clip_description",
        max_tokens=20,
    )
    folder = train_cli(config)
    metrics = json.loads((folder / "metrics.json").read_text())
    clips = [r for r in load_manifest(world / "video.jsonl").samples if r["split"] == "test"]
    assert [e["target"] for e in metrics["test"]["examples"]] == [describe_clip(r) for r in clips]
    captions = load_captioner(folder).caption([r["video"] for r in clips])
    assert captions == [e["generated"] for e in metrics["test"]["examples"]]


def test_a_run_can_use_the_lm_of_another_run(
    captioner_dir: Path, world: Path, tmp_path: Path
) -> None:
    lm = os.path.relpath(captioner_dir / "lm")  # relative to the working directory
    folder = train_cli(run_config(world, tmp_path / "again", lm={"kind": "builtin", "path": lm}))
    saved = json.loads((folder / "config.json").read_text())["lm"]
    assert saved == {"kind": "builtin", "path": str((captioner_dir / "lm").resolve())}
    assert not (folder / "lm").exists()
    image = str(world / "images" / "scene-00000.png")
    assert isinstance(load_captioner(folder).caption([image])[0], str)


def test_lm_corpus_holds_training_text_only(world: Path) -> None:
    config = ProjectorConfig.from_dict(
        {
            "task": "caption",
            "data": {"dataset": "world", "dir": str(world)},
            "encoders": {"image": "effnet-lite0"},
            "target": "caption",
            "output": str(world / "unused"),
        }
    )
    scenes = load_manifest(world / "scenes.jsonl").samples
    corpus = lm_corpus(config, load_manifest(world / "scenes.jsonl"))
    assert len(corpus) == len(set(corpus))
    train = [s for s in scenes if s["split"] == "train"]
    assert all(s["caption"] in corpus for s in train)
    held_out = {s["caption"] for s in scenes if s["split"] != "train"} - {
        s["caption"] for s in train
    }
    assert held_out
    for caption in held_out:
        assert not any(t == caption or t.endswith(f" : {caption}") for t in corpus)
        assert not any(t.startswith(f"{caption}. ") or t.endswith(f". {caption}") for t in corpus)
    first = train[0]["caption"]
    contexts = [t for t in corpus if t.endswith(f" : {first}")]
    assert len(contexts) == 1
    bag = contexts[0].removesuffix(f" : {first}").split()
    assert sorted(bag) == sorted({w for w in first.replace(",", " ").replace(":", " ").split()})
    config.lm.keyword_context = False
    assert not any(" : " in t for t in lm_corpus(config, load_manifest(world / "scenes.jsonl")))


def test_projector_train_on_a_users_manifest(world: Path, tmp_path: Path) -> None:
    """--data, --encoder and --target replace the recipe's data, encoders and target."""
    out = tmp_path / "mine"
    config = run_config(
        world, out, data={"manifest": str(tmp_path / "absent.jsonl")}, target="absent"
    )
    folder = train_cli(
        config,
        *("--data", str(world / "scenes.jsonl"), "--target", "caption"),
        *("--encoder", "image=effnet-lite0", "--encoder", "image.image_size=64"),
    )
    stored = json.loads((folder / "config.json").read_text())["config"]
    assert stored["data"]["manifest"] == str(world / "scenes.jsonl")
    assert stored["target"] == "caption"
    assert stored["encoders"] == {"image": {"name": "effnet-lite0", "image_size": 64}}
