"""Magic-byte sniffing and the limits dataclass."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import soundfile as sf
from PIL import Image

from omnifuse.errors import ConfigError
from omnifuse.io import DEFAULT_LIMITS, DecodeLimits, sniff_format

if TYPE_CHECKING:
    from conftest import Media


def _pil(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buffer, fmt)
    return buffer.getvalue()


def _sound(fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, [0.0] * 1600, 16000, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda m: _pil("PNG"), "png"),
        (lambda m: _pil("JPEG"), "jpeg"),
        (lambda m: _pil("GIF"), "gif"),
        (lambda m: _pil("WEBP"), "webp"),
        (lambda m: _pil("BMP"), "bmp"),
        (lambda m: _pil("TIFF"), "tiff"),
        (lambda m: _sound("WAV"), "wav"),
        (lambda m: _sound("FLAC"), "flac"),
        (lambda m: _sound("OGG", "VORBIS"), "ogg"),
        (lambda m: _sound("AIFF"), "aiff"),
        (lambda m: m.mp3().read_bytes(), "mp3"),
        (
            lambda m: m.encode_audio(
                m.path("a.m4a"), "ipod", "aac", m.tone(0.2, 16000), 16000
            ).read_bytes(),
            "m4a",
        ),
        (
            lambda m: m.encode_audio(
                m.path("a.aac"), "adts", "aac", m.tone(0.2, 16000), 16000
            ).read_bytes(),
            "aac",
        ),
        (lambda m: m.mp4(audio=False).read_bytes(), "mp4"),
        (lambda m: m.encode_video(m.path("v.webm"), "webm", "libvpx", None).read_bytes(), "webm"),
        (lambda m: m.encode_video(m.path("v.mkv"), "matroska", "mpeg4", None).read_bytes(), "mkv"),
        (lambda m: m.encode_video(m.path("v.avi"), "avi", "mjpeg", None).read_bytes(), "avi"),
        (lambda m: b"hello, world", None),
        (lambda m: b"", None),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_sniff_recognises_each_format_from_bytes_and_path(
    media: Media, make: Callable[[Media], bytes], expected: str | None
) -> None:
    data = make(media)
    assert sniff_format(data) == expected
    path = media.write("no-extension", data)
    assert sniff_format(path) == expected
    assert sniff_format(str(path)) == expected


def test_sniff_of_missing_path_is_none(tmp_path: Path) -> None:
    assert sniff_format(tmp_path / "absent.png") is None


def test_limits_are_frozen_with_documented_defaults() -> None:
    assert DecodeLimits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.max_bytes == 200 * 1024 * 1024
    assert DEFAULT_LIMITS.max_pixels == 40_000_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_pixels = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "field", ["max_bytes", "max_pixels", "max_audio_seconds", "max_text_chars"]
)
@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_limits_reject_non_positive_values(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        DecodeLimits(**{field: value})  # type: ignore[arg-type]
