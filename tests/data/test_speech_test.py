"""The speech-test builder: real pocketsphinx recordings, copied bit-exactly, with transcripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from omnifuse.data.builders import datasets
from omnifuse.data.schema import DatasetInfo, ManifestSchema, schema_path_for
from omnifuse.data.speech_test import (
    DEFAULT_ROOT,
    build_speech_test,
    normalise_transcript,
    parse_transcription,
    tidigits_words,
)
from omnifuse.errors import MissingDependencyError

needs_data = pytest.mark.skipif(
    not (DEFAULT_ROOT / "cards" / "cards.transcription").is_file(),
    reason="needs the Debian package pocketsphinx-testdata",
)


def _rows(out: Path) -> list[dict[str, Any]]:
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("speech")
    build_speech_test(out)
    return out


def test_registered_under_its_name() -> None:
    assert datasets.get("speech-test") is build_speech_test


def test_transcripts_are_normalised(tmp_path: Path) -> None:
    assert normalise_transcript("<s> Ten of  CLUBS </s> (001)") == "ten of clubs"
    path = tmp_path / "t.transcription"
    path.write_text("<s> go <sil> forward </s> (a-1)\n<s> </s> (empty)\nno id here\n")
    assert parse_transcription(path) == {"a-1": "go forward"}


def test_tidigits_names_decode_to_words() -> None:
    assert tidigits_words("dhd.2934z") == "two nine three four zero"
    assert tidigits_words("woman.ak.ooa") == "oh oh"
    assert tidigits_words("goforward") is None


@needs_data
def test_tidigits_name_convention_agrees_with_the_package_transcripts() -> None:
    lsn = parse_transcription(DEFAULT_ROOT / "tidigits" / "tidigits.lsn")
    names = (DEFAULT_ROOT / "tidigits" / "tidigits.ctl").read_text().split()
    assert len(names) > 20
    for name in names:
        assert tidigits_words(name) == lsn[name]


@needs_data
def test_rows_have_real_transcripts_and_plausible_durations(built: Path) -> None:
    rows = _rows(built)
    assert len(rows) >= 10
    assert {"cards", "librivox"} <= {row["source"] for row in rows}
    for row in rows:
        words = row["text"].split()
        assert words and row["text"] == row["text"].lower()
        assert not any(mark in row["text"] for mark in ("<s>", "</s>", "(", ")"))
        assert row["split"] == "test"
        assert 0.15 <= row["duration_s"] / len(words) <= 1.5
    texts = {row["id"]: row["text"] for row in rows}
    assert texts["cards-001"] == "ten of clubs"
    assert texts["librivox-sense_and_sensibility_01_austen_64kb-0880"] == (
        "he was not an ill disposed young man"
    )


@needs_data
def test_wavs_hold_the_source_samples_at_16k(built: Path) -> None:
    for row in _rows(built):
        samples, rate = sf.read(built / row["audio"], dtype="int16")
        info = sf.info(str(built / row["audio"]))
        assert (rate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert row["duration_s"] == pytest.approx(len(samples) / 16000)
        source_dir = DEFAULT_ROOT / row["source"]
        name = row["id"].removeprefix(f"{row['source']}-")
        if (source_dir / f"{name}.raw").is_file():
            source = np.fromfile(source_dir / f"{name}.raw", dtype="<i2")
        else:
            source, _ = sf.read(source_dir / f"{name}.wav", dtype="int16")
        np.testing.assert_array_equal(samples, source)
        assert np.abs(samples.astype(np.float64)).mean() > 50


@needs_data
def test_schema_and_info(built: Path) -> None:
    schema = ManifestSchema.from_dict(
        json.loads(schema_path_for(built / "manifest.jsonl").read_text())
    )
    assert schema.modalities == {"audio": "audio"} and schema.labels == ["text"]
    info = DatasetInfo.read(built)
    assert info.manifests == {"asr": "manifest.jsonl"}
    assert info.size == len(_rows(built))


@needs_data
def test_deterministic_and_size_caps_by_seed(built: Path, tmp_path: Path) -> None:
    build_speech_test(tmp_path / "again")
    assert (tmp_path / "again/manifest.jsonl").read_bytes() == (
        built / "manifest.jsonl"
    ).read_bytes()
    for row in _rows(built):
        assert (tmp_path / "again" / row["audio"]).read_bytes() == (
            built / row["audio"]
        ).read_bytes()
    build_speech_test(tmp_path / "a", seed=0, size=4)
    build_speech_test(tmp_path / "b", seed=0, size=4)
    build_speech_test(tmp_path / "c", seed=1, size=4)
    first = [row["id"] for row in _rows(tmp_path / "a")]
    assert len(first) == 4
    assert first == [row["id"] for row in _rows(tmp_path / "b")]
    assert first != [row["id"] for row in _rows(tmp_path / "c")]


def test_missing_package_names_it(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match="pocketsphinx-testdata"):
        build_speech_test(tmp_path / "out", root=tmp_path / "nowhere")
