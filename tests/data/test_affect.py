"""The affect builder: deterministic, held-out test voices, disjoint sentences, the agreement
column, and a delivery that the audio really carries."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omnifuse.data.affect import (
    DELIVERY,
    DISAGREE_FRACTION,
    LABELS,
    PEAK,
    TEST_VOICES,
    TRAIN_VOICES,
    VALENCE,
    build_affect,
    plan_samples,
)
from omnifuse.data.affect_words import PLEASANT, UNPLEASANT
from omnifuse.data.builders import datasets
from omnifuse.data.schema import DatasetInfo, ManifestSchema, schema_path_for
from omnifuse.encoders.sentiment import read_sentiment
from omnifuse.errors import ConfigError
from omnifuse.io import load_audio

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

SIZE = 24


def _rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def built(built_dataset: Callable[..., Path]) -> Path:
    return built_dataset("affect", seed=0, size=SIZE)


def test_registered_with_schema_and_info(built: Path) -> None:
    assert datasets.get("affect") is build_affect
    schema = ManifestSchema.from_dict(
        json.loads(schema_path_for(built / "manifest.jsonl").read_text(encoding="utf-8"))
    )
    assert schema.modalities == {"text": "text", "audio": "audio"}
    assert schema.labels == ["label"]
    info = DatasetInfo.read(built)
    assert info.name == "affect" and info.size == SIZE
    assert info.params["test_voices"] == [f"espeak-ng:{v}" for v in TEST_VOICES]
    assert "synthetic_delivery" in info.params


def test_same_seed_gives_identical_bytes(built: Path, tmp_path: Path) -> None:
    build_affect(tmp_path, seed=0, size=SIZE)
    for name in ("manifest.jsonl", "manifest.schema.json", "dataset.json"):
        assert (tmp_path / name).read_bytes() == (built / name).read_bytes()
    for row in _rows(built)[:4]:
        assert (tmp_path / row["audio"]).read_bytes() == (built / row["audio"]).read_bytes()
    other = [p.text for p in plan_samples(SIZE, seed=1)]
    assert other != [row["text"] for row in _rows(built)]


def test_rows_are_complete_and_audio_decodes(built: Path) -> None:
    rows = _rows(built)
    assert [r["id"] for r in rows] == [f"affect-{i:05d}" for i in range(SIZE)]
    assert Counter(r["split"] for r in rows) == {"train": 18, "val": 3, "test": 3}
    for row in rows:
        assert row["label"] in LABELS and row["agreement"] in ("agree", "disagree")
        wave = load_audio(built / row["audio"])
        assert 1.0 < len(wave) / 16_000 < 8.0 and np.isfinite(wave).all()


def test_test_voices_are_held_out() -> None:
    assert not set(TEST_VOICES) & set(TRAIN_VOICES)
    plans = plan_samples(400, seed=2)
    assert {p.voice.name for p in plans if p.split == "test"} == set(TEST_VOICES)
    assert {p.voice.name for p in plans if p.split != "test"} == set(TRAIN_VOICES)


def test_splits_share_no_sentence() -> None:
    plans = plan_samples(600, seed=0)
    texts = {split: {p.text for p in plans if p.split == split} for split in ("train", "val")}
    texts["test"] = {p.text for p in plans if p.split == "test"}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["val"]
    assert not texts["val"] & texts["test"]


def test_agreement_proportion_and_the_words_of_disagreeing_rows() -> None:
    plans = plan_samples(1000, seed=4)
    for split in ("train", "val", "test"):
        rows = [p for p in plans if p.split == split]
        assert sum(not p.agree for p in rows) == round(DISAGREE_FRACTION * len(rows))
    counts = Counter(p.label for p in plans)
    assert set(counts) == set(LABELS) and max(counts.values()) - min(counts.values()) <= 3
    for plan in plans:
        remarks = PLEASANT if plan.words == "pleasant" else UNPLEASANT
        assert any(remark in plan.text for remark in remarks)
        assert (plan.words == VALENCE[plan.label]) == plan.agree


def test_words_carry_valence_for_vader() -> None:
    plans = plan_samples(200, seed=0)
    right = [
        (read_sentiment(p.text).scores["compound"] > 0) == (p.words == "pleasant") for p in plans
    ]
    assert np.mean(right) > 0.9


def test_delivery_carries_arousal_strongly_and_valence_weakly() -> None:
    plans = plan_samples(800, seed=0)

    def mean(label: str, field: str) -> float:
        values = [getattr(p.voice, field) for p in plans if p.label == label]
        return float(np.mean(values))

    for fast in ("happy", "angry"):
        for slow in ("calm", "sad"):
            assert mean(fast, "rate") > mean(slow, "rate") + 40
    assert mean("happy", "pitch") > mean("angry", "pitch")
    assert mean("happy", "pitch_range") > mean("angry", "pitch_range")
    assert mean("sad", "pitch") < mean("calm", "pitch")
    gains = {label: np.mean([p.gain_db for p in plans if p.label == label]) for label in LABELS}
    assert min(gains["happy"], gains["angry"]) > max(gains["calm"], gains["sad"]) + 8
    assert DELIVERY["happy"].rate == DELIVERY["angry"].rate  # arousal alone sets the rate


def test_the_audio_is_as_loud_as_the_plan_says(built: Path) -> None:
    for row in _rows(built):
        peak = float(np.abs(load_audio(built / row["audio"])).max())
        assert peak == pytest.approx(PEAK * 10 ** (row["gain_db"] / 20), rel=0.05, abs=0.005)


def test_too_small_a_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        build_affect(tmp_path, size=2)


def test_a_tiny_affect_sweep_reports_the_agreement_groups(tmp_path: Path) -> None:
    from omnifuse.sweep import SweepConfig, run_sweep

    config = SweepConfig(
        data="affect",
        fusions=["concat"],
        singles=["concat"],
        dropout_study=[],
        out=tmp_path,
        size=60,
        epochs=1,
        batch_size=16,
        dim=16,
        shapley=False,
        plots=False,
        progress=False,
    )
    assert config.encoder_specs() == {"audio": {"name": "prosody"}, "text": {"name": "vader"}}
    result = run_sweep(config)
    names = [r.name for r in result.results]
    assert names == ["concat", "audio only", "text only"]
    for strategy in result.results:
        assert set(strategy.groups) == {"agree", "disagree"}
