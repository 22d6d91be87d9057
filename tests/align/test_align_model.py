"""An alignment run end to end: the folder, load_aligned/embed, retrieval above chance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from omnifuse.align import AlignResult, InvalidAlignedModelError, ZeroShotClassifier, load_aligned
from omnifuse.align.config import AlignConfig
from omnifuse.align.data import load_split, load_training_data
from omnifuse.align.evaluate import embed_samples, retrieval_metrics, split_embeddings
from omnifuse.data.cache import FeatureCache
from omnifuse.data.manifest import load_manifest
from omnifuse.errors import InputError, MissingModalityError


def _rows(world: Path, split: str) -> list[dict[str, object]]:
    return load_manifest(world / "scenes.jsonl").split(split)


def test_folder_holds_config_weights_metrics_and_log(tiny_run: AlignResult) -> None:
    folder = tiny_run.folder
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "omnifuse-aligned"
    assert config["dim"] == 32
    assert set(config["modalities"]) == {"text", "image", "audio"}
    assert config["modalities"]["audio"]["column"] == "caption_audio"
    assert config["modalities"]["image"]["encoder"]["name"] == "cnn-image"
    assert AlignConfig.from_dict(config["config"]).to_dict() == config["config"]
    assert (folder / "model.safetensors").is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["data"]["train"] == 32
    assert {"text→image", "audio→image", "image→audio"} <= set(metrics["test"])
    log = (folder / "metrics.jsonl").read_text().splitlines()
    assert len(log) == len(tiny_run.history)
    stages = {json.loads(line)["stage"] for line in log}
    assert stages == {"pairs", "bind:caption_audio"}


def test_training_aligns_the_pairs_well_above_chance(
    tiny_run: AlignResult, tiny_world: Path
) -> None:
    rows = _rows(tiny_world, "train")
    model = load_aligned(tiny_run.folder)
    report = retrieval_metrics(embed_samples(model, rows), [r["caption"] for r in rows])
    for name in ("text→image", "image→text"):
        assert report[name]["R@1"] >= 0.5 > 5 * report[name]["chance"]["R@1"], name
    # the tiny run's audio encoder is a random log-mel CNN: weaker, still far above chance
    assert report["audio→text"]["mrr"] > 3 * report["audio→text"]["chance"]["mrr"]
    # audio was bound to text only, yet finds images through the shared space
    assert report["audio→image"]["mrr"] > 2 * report["audio→image"]["chance"]["mrr"]


def test_embed_contract(tiny_run: AlignResult, tiny_world: Path) -> None:
    model = load_aligned(tiny_run.folder)
    assert model.modalities == ("text", "image", "audio")
    assert model.dim == 32
    rows = _rows(tiny_world, "test")
    for modality, column in (("text", "caption"), ("image", "image"), ("audio", "caption_audio")):
        vectors = model.embed(modality, [r[column] for r in rows], batch_size=3)
        assert vectors.dtype == np.float32 and vectors.shape == (len(rows), 32)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert model.embed("text", []).shape == (0, 32)


def test_embed_equals_the_cached_features_path(tiny_run: AlignResult, tiny_world: Path) -> None:
    """Raw inputs through the encoders give what training saw through the feature cache."""
    stored = json.loads((tiny_run.folder / "config.json").read_text())
    config = AlignConfig.from_dict(stored["config"])
    cache = FeatureCache(config.cache.dir or "")
    manifest = load_manifest(tiny_world / "scenes.jsonl")
    split = load_split(config, manifest, cache, "test", exclude=False)
    cached = split_embeddings(tiny_run.model, split)
    model = load_aligned(tiny_run.folder)
    columns = {"text": "caption", "image": "image", "audio": "caption_audio"}
    for modality, column in columns.items():
        raw = model.embed(modality, [s[column] for s in split.samples])
        cosine = np.sum(raw * cached[modality], axis=1)
        assert cosine.min() > 0.999, modality  # tokens are cached in fp16


def test_embed_errors(tiny_run: AlignResult, tmp_path: Path) -> None:
    model = load_aligned(tiny_run.folder)
    with pytest.raises(MissingModalityError, match="embeds text, image, audio"):
        model.embed("video", ["clip.mp4"])
    with pytest.raises(InputError):
        model.embed("image", [str(tmp_path / "missing.png")])
    with pytest.raises(InputError):
        model.embed("text", [""])


def test_zero_shot_picks_the_trained_caption(tiny_run: AlignResult, tiny_world: Path) -> None:
    rows = _rows(tiny_world, "train")[:6]
    captions = [str(r["caption"]) for r in rows]
    classifier = ZeroShotClassifier(tiny_run.model, captions, templates=("{}",))
    predicted = classifier.predict([r["image"] for r in rows])
    assert sum(p == c for p, c in zip(predicted, captions, strict=True)) >= 4
    # class embeddings are the normalised means of their prompts' embeddings
    two = ZeroShotClassifier(tiny_run.model, captions[:2], templates=("{}", "a picture: {}"))
    prompts = tiny_run.model.embed("text", [captions[0], f"a picture: {captions[0]}"])
    mean = prompts.mean(axis=0)
    np.testing.assert_allclose(two.class_embeddings[0], mean / np.linalg.norm(mean), atol=1e-6)


def test_load_errors(tiny_run: AlignResult, tmp_path: Path) -> None:
    with pytest.raises(InvalidAlignedModelError, match=r"no config\.json"):
        load_aligned(tmp_path)
    fusion = tmp_path / "fusion"
    fusion.mkdir()
    (fusion / "config.json").write_text(json.dumps({"format": "omnifuse-model", "version": 1}))
    with pytest.raises(InvalidAlignedModelError, match="not an aligned model"):
        load_aligned(fusion)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((tiny_run.folder / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InvalidAlignedModelError, match="unreadable weights"):
        load_aligned(broken)


def test_a_pooled_head_reuses_cached_tokens(
    tiny_run: AlignResult, tiny_world: Path, tmp_path: Path
) -> None:
    """A recipe that pools audio by its mean reads the cache written with audio tokens."""
    stored = json.loads((tiny_run.folder / "config.json").read_text())["config"]
    stored["heads"] = {}
    config = AlignConfig.from_dict(stored)
    _, splits = load_training_data(config, tmp_path / "out")
    assert splits["train"].features["caption_audio"].tokens is None
    assert len(splits["train"]) == 32
    cache = json.loads((Path(stored["cache"]["dir"]) / "cache.json").read_text())
    assert cache["columns"]["caption_audio"]["tokens"] is True
    assert cache["columns"]["image"]["tokens"] is False
