"""The av-digits builder: deterministic, consistent labels, held-out voices, real noisy speech."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omnifuse.data.av_digits import DIGIT_WORDS, build_av_digits, load_digit_images
from omnifuse.data.builders import datasets
from omnifuse.data.schema import DatasetInfo, ManifestSchema, schema_path_for
from omnifuse.errors import ConfigError
from omnifuse.speech.tts import SAMPLE_RATE, Voice, default_voices, synthesize

pytestmark = pytest.mark.skipif(
    len(default_voices()) < 2, reason="needs espeak-ng or flite with two voices"
)

SIZE = 40


def _rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _png(out: Path, rel: str) -> np.ndarray:
    with Image.open(out / rel) as image:
        assert image.mode == "L"
        return np.asarray(image)


@pytest.fixture(scope="module")
def built(built_dataset: Callable[..., Path]) -> Path:
    return built_dataset("av-digits", seed=0, size=SIZE)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("avd-clean")
    build_av_digits(out, seed=3, size=12, degrade=False, upscale=2)
    return out


def test_registered_under_its_name() -> None:
    assert datasets.get("av-digits") is build_av_digits


def test_same_seed_gives_identical_bytes(built: Path, tmp_path: Path) -> None:
    build_av_digits(tmp_path, seed=0, size=SIZE)
    for name in ("manifest.jsonl", "manifest.schema.json", "dataset.json"):
        assert (tmp_path / name).read_bytes() == (built / name).read_bytes()
    for row in _rows(built):
        for column in ("image", "audio"):
            assert (tmp_path / row[column]).read_bytes() == (built / row[column]).read_bytes()


def test_other_seed_differs(built: Path, tmp_path: Path) -> None:
    build_av_digits(tmp_path, seed=1, size=SIZE)
    assert (tmp_path / "manifest.jsonl").read_bytes() != (built / "manifest.jsonl").read_bytes()
    first = _rows(built)[0]
    assert (tmp_path / first["audio"]).read_bytes() != (built / first["audio"]).read_bytes()


def test_manifest_schema_and_info(built: Path) -> None:
    schema = ManifestSchema.from_dict(
        json.loads(schema_path_for(built / "manifest.jsonl").read_text())
    )
    assert schema.modalities == {"image": "image", "audio": "audio"}
    assert schema.labels == ["label"]
    info = DatasetInfo.read(built)
    assert (info.name, info.seed, info.size) == ("av-digits", 0, SIZE)
    assert info.manifests == {"classification": "manifest.jsonl"}
    rows = _rows(built)
    assert len(rows) == SIZE
    assert len({row["id"] for row in rows}) == SIZE
    assert all("text" not in row for row in rows)


def test_splits_are_70_15_15_with_disjoint_images(built: Path) -> None:
    rows = _rows(built)
    counts = {
        split: sum(row["split"] == split for row in rows) for split in ("train", "val", "test")
    }
    assert counts == {"train": 28, "val": 6, "test": 6}
    images = {split: {r["image_index"] for r in rows if r["split"] == split} for split in counts}
    assert not images["train"] & images["val"]
    assert not images["train"] & images["test"]
    assert not images["val"] & images["test"]


def test_test_voices_never_speak_in_train_or_val(built: Path) -> None:
    rows = _rows(built)
    params = DatasetInfo.read(built).params
    held_out = set(params["test_voices"])
    assert held_out and not held_out & set(params["train_voices"])
    assert {r["voice"] for r in rows if r["split"] == "test"} <= held_out
    assert not {r["voice"] for r in rows if r["split"] != "test"} & held_out
    engines = {voice.split(":")[0] for voice in held_out}
    available = {voice.engine for voice in default_voices()}
    assert engines == {e for e in available if sum(v.engine == e for v in default_voices()) > 1}


def test_labels_match_the_source_digits(built: Path) -> None:
    _, labels = load_digit_images()
    for row in _rows(built):
        assert row["label"] == str(labels[row["image_index"]])
        assert row["word"] == DIGIT_WORDS[int(row["label"])]


def test_undegraded_images_are_the_scaled_sklearn_digits(clean: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for row in _rows(clean):
        expected = np.round(digits.images[row["image_index"]] * 255 / 16).astype(np.uint8)
        png = _png(clean, row["image"])
        assert png.shape == (16, 16)
        np.testing.assert_array_equal(png, np.kron(expected, np.ones((2, 2), np.uint8)))
        assert row["occlusion"] is None


def test_degraded_images_keep_the_digit_under_noise_and_occlusion(built: Path) -> None:
    pixels, _ = load_digit_images()
    params = DatasetInfo.read(built).params
    for row in _rows(built):
        png = _png(built, row["image"]).astype(np.float64)
        source = pixels[row["image_index"]].astype(np.float64)
        assert png.shape == (8, 8)
        top, left, side = row["occlusion"]
        assert side == params["occlusion"] == 3
        assert not png[top : top + side, left : left + side].any()
        visible = np.ones((8, 8), bool)
        visible[top : top + side, left : left + side] = False
        residual = png[visible] - source[visible]
        assert np.abs(residual).mean() > 10.0
        assert np.corrcoef(png[visible], source[visible])[0, 1] > 0.5


def _decode(path: Path) -> tuple[np.ndarray, int]:
    wave, rate = sf.read(io.BytesIO(path.read_bytes()), dtype="float64", always_2d=True)
    assert wave.shape[1] == 1
    return wave[:, 0], rate


def test_audio_is_plausible_mono_16k_speech(built: Path) -> None:
    for row in _rows(built):
        wave, rate = _decode(built / row["audio"])
        assert rate == SAMPLE_RATE
        assert 0.2 <= len(wave) / rate <= 2.5
        assert np.sqrt(np.mean(wave**2)) > 0.01
        assert 0.0 <= row["snr_db"] <= 20.0
        assert 120 <= row["rate"] <= 220


def test_noise_matches_the_recorded_snr(built: Path) -> None:
    for row in _rows(built)[:: SIZE // 6]:
        engine, name = row["voice"].split(":")
        voice = Voice(engine, name, row["rate"], row["pitch"] or Voice().pitch)
        speech = synthesize(row["word"], voice)
        noisy, rate = _decode(built / row["audio"])
        lead = round(row["lead_s"] * rate)
        clean = np.zeros_like(noisy)
        clean[lead : lead + len(speech)] = speech
        gain = float(noisy @ clean / (clean @ clean))
        noise = noisy - gain * clean
        measured = 10 * np.log10(np.mean((gain * clean) ** 2) / np.mean(noise**2))
        assert measured == pytest.approx(row["snr_db"], abs=0.3)


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        build_av_digits(tmp_path, size=0)
    with pytest.raises(ConfigError):
        build_av_digits(tmp_path, size=10, snr_range=(10.0, 0.0))
