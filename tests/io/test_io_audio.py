"""load_audio on good inputs: every format and array form gives mono float32 at the asked rate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import soundfile as sf

from omnifuse.errors import ConfigError, InputTooLargeError
from omnifuse.io import DecodeLimits, load_audio

if TYPE_CHECKING:
    from conftest import Media


def test_stereo_44k_tone_becomes_16k_mono_with_its_pitch(media: Media) -> None:
    rate = 44100
    left = media.tone(0.5, rate)
    path = media.path("stereo.wav")
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), rate)
    wave = load_audio(path)
    assert wave.dtype == np.float32
    assert wave.ndim == 1
    assert wave.shape == (8000,)
    assert media.peak_hz(wave, 16000) == pytest.approx(440, abs=2)
    assert np.abs(wave[1000:-1000]).max() == pytest.approx(0.25, abs=0.01)


def _soundfile_writer(
    fmt: str, subtype: str | None, rate: int = 44100
) -> Callable[[Media, str], Path]:
    def write(media: Media, name: str) -> Path:
        path = media.path(name)
        sf.write(path, media.tone(0.5, rate), rate, format=fmt, subtype=subtype)
        return path

    return write


def _av_writer(container: str, codec: str, rate: int = 48000) -> Callable[[Media, str], Path]:
    def write(media: Media, name: str) -> Path:
        return media.encode_audio(media.path(name), container, codec, media.tone(0.5, rate), rate)

    return write


@pytest.mark.parametrize(
    ("name", "write", "tolerance"),
    [
        ("pcm16.wav", _soundfile_writer("WAV", "PCM_16"), 0),
        ("float.wav", _soundfile_writer("WAV", "FLOAT"), 0),
        ("tone.flac", _soundfile_writer("FLAC", None), 0),
        ("tone.aiff", _soundfile_writer("AIFF", None), 0),
        ("vorbis.ogg", _soundfile_writer("OGG", "VORBIS"), 0),
        ("opus.ogg", _soundfile_writer("OGG", "OPUS", rate=48000), 0),
        ("tone.mp3", _av_writer("mp3", "mp3", rate=44100), 0),
        ("tone.m4a", _av_writer("ipod", "aac"), 1024),
        ("tone.aac", _av_writer("adts", "aac"), 1024),
        ("opus.webm", _av_writer("webm", "libopus"), 0),
    ],
)
def test_formats_decode_to_the_tone(
    media: Media, name: str, write: Callable[[Media, str], Path], tolerance: int
) -> None:
    wave = load_audio(write(media, name))
    assert wave.dtype == np.float32
    assert 8000 <= wave.size <= 8000 + tolerance
    assert media.peak_hz(wave[:8000], 16000) == pytest.approx(440, abs=2.5)
    rms = float(np.sqrt(np.mean(wave[2000:6000] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), abs=0.02)


def test_format_is_decided_by_content_not_extension(media: Media) -> None:
    flac_named_mp3 = media.path("really-flac.mp3")
    sf.write(flac_named_mp3, media.tone(0.5, 16000), 16000, format="FLAC")
    mp3_named_wav = media.mp3("really-mp3.wav")
    assert load_audio(flac_named_mp3).size == 8000
    assert media.peak_hz(load_audio(mp3_named_wav), 16000) == pytest.approx(440, abs=2)


def test_soundtrack_of_a_file_with_cover_art(media: Media) -> None:
    wave = load_audio(media.song_with_cover())
    assert 8000 <= wave.size <= 8000 + 1024
    assert media.peak_hz(wave[:8000], 16000) == pytest.approx(440, abs=2.5)


def test_bytes_and_path_give_the_same_samples(media: Media) -> None:
    for path in (media.wav(rate=22050), media.mp3()):
        assert np.array_equal(load_audio(path), load_audio(path.read_bytes()))


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050])
def test_target_rate_sets_the_length(media: Media, sample_rate: int) -> None:
    wave = load_audio(media.wav(rate=44100), sample_rate=sample_rate)
    assert wave.size == sample_rate // 2
    assert media.peak_hz(wave, sample_rate) == pytest.approx(440, abs=2.5)


def test_native_rate_is_returned_unchanged(media: Media) -> None:
    path = media.wav(rate=16000, subtype="FLOAT")
    assert np.array_equal(load_audio(path), media.tone(0.5, 16000))


@pytest.mark.parametrize(
    ("array", "rate"),
    [
        (np.stack([np.ones(4000), np.zeros(4000)], axis=1), 8000),
        (np.stack([np.ones(4000), np.zeros(4000)], axis=0), 8000),
        (np.full(4000, 16384, np.int16), 8000.0),
        (np.full(4000, 2**30, np.int32), np.int64(8000)),
        (np.full(4000, 192, np.uint8), 8000),
        (np.full(4000, 0.5, np.float64), 8000),
    ],
    ids=["frames-channels", "channels-frames", "int16", "int32", "uint8", "float64"],
)
def test_array_pairs_are_scaled_and_mixed_down(array: np.ndarray, rate: object) -> None:
    wave = load_audio((array, rate), sample_rate=8000)
    assert wave.dtype == np.float32
    np.testing.assert_allclose(wave, np.full(4000, 0.5, np.float32))


def test_array_pair_is_resampled(media: Media) -> None:
    wave = load_audio((media.tone(1.0, 48000), 48000))
    assert wave.size == 16000
    assert media.peak_hz(wave, 16000) == pytest.approx(440, abs=1)


@pytest.mark.parametrize("maker", ["wav", "mp3"])
def test_duration_limit_is_checked_from_the_header(media: Media, maker: str) -> None:
    path = getattr(media, maker)(seconds=0.5)
    assert load_audio(path, limits=DecodeLimits(max_audio_seconds=0.6)).size >= 8000
    with pytest.raises(InputTooLargeError, match=r"over the limit of 0\.4 s"):
        load_audio(path, limits=DecodeLimits(max_audio_seconds=0.4))


@pytest.mark.parametrize("sample_rate", [0, -16000, 16000.5, True])
def test_bad_target_rate_is_a_config_error(media: Media, sample_rate: object) -> None:
    with pytest.raises(ConfigError, match="sample_rate"):
        load_audio(media.wav(), sample_rate=sample_rate)  # type: ignore[arg-type]
