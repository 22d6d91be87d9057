"""The bad-input corpus: each broken, hostile or mislabelled input raises its typed error.

One table holds every case: how to make the input, which loader reads it, the error class it
must raise and a fragment of the reason. Every error must also name the input and the modality,
and no exception from PIL, soundfile or PyAV may escape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pytest

from omnifuse.errors import (
    CorruptInputError,
    EmptyInputError,
    InputError,
    InputNotFoundError,
    InputTooLargeError,
    InvalidValueError,
    TextEncodingError,
    UnsupportedFormatError,
)
from omnifuse.io import DecodeLimits, load_audio, load_image, load_text, load_video

if TYPE_CHECKING:
    from conftest import Media

Maker = Callable[[Any], object]
Loader = Callable[..., object]


class Case(NamedTuple):
    """One corpus entry: its id, how to make the input, the loader, the error and its reason."""

    id: str
    make: Maker
    loader: Loader
    error: type[InputError]
    reason: str


BAD_PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n"
LATIN1 = "caf\u00e9 cr\u00e8me".encode("latin-1")


def _limited(loader: Callable[..., object], **limits: Any) -> Loader:
    return functools.partial(loader, limits=DecodeLimits(**limits))


# fmt: off
CORPUS: list[Case] = [
    # image
    Case("png-truncated", lambda m: m.truncated(m.noise("n.png", "PNG"), "cut.png"),
         load_image, CorruptInputError, "cannot be decoded"),
    Case("jpeg-truncated", lambda m: m.truncated(m.noise("n.jpg", "JPEG"), "cut.jpg"),
         load_image, CorruptInputError, "truncated"),
    Case("png-bomb-20000x20000", lambda m: m.write("bomb.png", m.bomb_png(20000, 20000)),
         load_image, InputTooLargeError, "pixels"),
    Case("png-over-pixel-limit", lambda m: m.red_png(size=(30, 30)),
         _limited(load_image, max_pixels=899), InputTooLargeError, "900 pixels"),
    Case("png-over-byte-limit", lambda m: m.noise("n.png", "PNG"),
         _limited(load_image, max_bytes=100), InputTooLargeError, "over the limit of 100"),
    Case("image-zero-bytes", lambda m: m.write("empty.png", b""),
         load_image, EmptyInputError, "0 bytes"),
    Case("image-missing", lambda m: m.path("absent.png"),
         load_image, InputNotFoundError, "no such file"),
    Case("image-directory", lambda m: m.root,
         load_image, InputNotFoundError, "not a regular file"),
    Case("wav-named-png", lambda m: m.wav("sound.png"),
         load_image, UnsupportedFormatError, "looks like WAV audio"),
    Case("random-named-jpg", lambda m: m.random("noise.jpg"),
         load_image, UnsupportedFormatError, "not in a recognised image format"),
    Case("png-signature-bad-header", lambda m: m.write("bad.png", BAD_PNG),
         load_image, CorruptInputError, "malformed header"),
    Case("eps-never-decoded", lambda m: m.write("x.eps", EPS),
         load_image, UnsupportedFormatError, "not in a recognised"),
    Case("image-array-nan", lambda m: np.full((4, 4, 3), np.nan, np.float32),
         load_image, InvalidValueError, "NaN"),
    Case("image-array-out-of-range", lambda m: np.full((4, 4), 2.0),
         load_image, InvalidValueError, "outside [0, 1]"),
    Case("image-array-bad-shape", lambda m: np.zeros((4, 4, 5), np.uint8),
         load_image, InvalidValueError, "shape"),
    Case("image-array-bad-dtype", lambda m: np.zeros((4, 4), np.int64),
         load_image, InvalidValueError, "dtype int64"),
    Case("image-array-empty", lambda m: np.zeros((0, 4, 3), np.uint8),
         load_image, EmptyInputError, "no pixels"),
    Case("image-wrong-type", lambda m: {"pixels": 1},
         load_image, UnsupportedFormatError, "dict"),
    # audio
    Case("wav-zero-bytes", lambda m: m.write("empty.wav", b""),
         load_audio, EmptyInputError, "0 bytes"),
    Case("wav-header-only", lambda m: m.write("header.wav", m.wav_header()),
         load_audio, EmptyInputError, "no audio samples"),
    Case("wav-header-promising-data", lambda m: m.write("lie.wav", m.wav_header(data_bytes=999)),
         load_audio, EmptyInputError, "no audio samples"),
    Case("wav-header-truncated", lambda m: m.write("cut.wav", m.wav_header()[:20]),
         load_audio, CorruptInputError, "cannot be decoded"),
    Case("float-wav-with-nan", lambda m: m.float_wav("nan.wav", [0.1, np.nan, 0.2]),
         load_audio, InvalidValueError, "NaN"),
    Case("png-named-wav", lambda m: m.red_png("image.wav"),
         load_audio, UnsupportedFormatError, "looks like a PNG image, not audio"),
    Case("random-named-wav", lambda m: m.random("noise.wav"),
         load_audio, UnsupportedFormatError, "not in a recognised audio format"),
    Case("wav-too-long", lambda m: m.wav(seconds=1.0),
         _limited(load_audio, max_audio_seconds=0.5), InputTooLargeError, "lasts 1.0 s"),
    Case("mp3-too-long", lambda m: m.mp3(seconds=1.0),
         _limited(load_audio, max_audio_seconds=0.5), InputTooLargeError, "limit of 0.5 s"),
    Case("wav-over-byte-limit", lambda m: m.wav(),
         _limited(load_audio, max_bytes=100), InputTooLargeError, "bytes"),
    Case("audio-missing", lambda m: m.path("absent.wav"),
         load_audio, InputNotFoundError, "no such file"),
    Case("silent-video-as-audio", lambda m: m.mp4(audio=False),
         load_audio, UnsupportedFormatError, "no audio stream"),
    Case("audio-array-nan", lambda m: (np.array([0.0, np.nan, 0.1]), 16000),
         load_audio, InvalidValueError, "NaN"),
    Case("audio-array-inf", lambda m: (np.array([[0.0, np.inf]] * 3), 16000),
         load_audio, InvalidValueError, "infinite"),
    Case("audio-array-empty", lambda m: (np.zeros(0, np.float32), 16000),
         load_audio, EmptyInputError, "no audio samples"),
    Case("audio-array-3d", lambda m: (np.zeros((2, 2, 2)), 16000),
         load_audio, InvalidValueError, "neither 1-D nor 2-D"),
    Case("audio-array-complex", lambda m: (np.zeros(4, complex), 16000),
         load_audio, InvalidValueError, "complex"),
    Case("audio-rate-zero", lambda m: (np.zeros(4), 0),
         load_audio, InvalidValueError, "sample rate 0"),
    Case("audio-rate-fractional", lambda m: (np.zeros(4), 8000.5),
         load_audio, InvalidValueError, "sample rate"),
    Case("audio-array-without-rate", lambda m: np.zeros(16000),
         load_audio, UnsupportedFormatError, "(array, rate)"),
    Case("audio-array-too-long", lambda m: (np.zeros(16000), 16000),
         _limited(load_audio, max_audio_seconds=0.5), InputTooLargeError, "lasts 1.0 s"),
    # video
    Case("random-named-mp4", lambda m: m.random("noise.mp4"),
         load_video, UnsupportedFormatError, "not in a recognised video format"),
    Case("mp4-truncated", lambda m: m.truncated(m.mp4(), "cut.mp4"),
         load_video, CorruptInputError, "cannot be decoded"),
    Case("mp4-header-only", lambda m: m.write("ftyp.mp4", m.mp4().read_bytes()[:32]),
         load_video, CorruptInputError, "cannot be decoded"),
    Case("video-zero-bytes", lambda m: m.write("empty.mp4", b""),
         load_video, EmptyInputError, "0 bytes"),
    Case("cover-art-is-no-video", lambda m: m.song_with_cover(),
         load_video, UnsupportedFormatError, "no video stream"),
    Case("wav-as-video", lambda m: m.wav("sound.mp4"),
         load_video, UnsupportedFormatError, "looks like WAV audio, not a video"),
    Case("png-as-video", lambda m: m.red_png(),
         load_video, UnsupportedFormatError, "looks like a PNG image"),
    Case("video-too-long", lambda m: m.mp4(),
         _limited(load_video, max_video_seconds=1.0), InputTooLargeError, "lasts 2.0 s"),
    Case("video-missing", lambda m: m.path("absent.mp4"),
         load_video, InputNotFoundError, "no such file"),
    Case("video-wrong-type", lambda m: np.zeros((2, 4, 4, 3), np.uint8),
         load_video, UnsupportedFormatError, "ndarray"),
    # text
    Case("text-invalid-utf8", lambda m: b"abc\xff\xfedef",
         load_text, TextEncodingError, "byte offset 3"),
    Case("text-bom-then-invalid", lambda m: b"\xef\xbb\xbfab\xc3(",
         load_text, TextEncodingError, "byte offset 5"),
    Case("text-latin1-file", lambda m: m.write("latin1.txt", LATIN1),
         load_text, TextEncodingError, "byte offset 3"),
    Case("text-empty", lambda m: "",
         load_text, EmptyInputError, "no text"),
    Case("text-whitespace-only", lambda m: " \n\t\u3000 ",
         load_text, EmptyInputError, "no text"),
    Case("text-controls-only", lambda m: "\x00\x01\x1b",
         load_text, EmptyInputError, "no text"),
    Case("text-zero-byte-file", lambda m: m.write("empty.txt", b""),
         load_text, EmptyInputError, "0 bytes"),
    Case("text-too-long", lambda m: "word " * 30,
         _limited(load_text, max_text_chars=100), InputTooLargeError, "150 characters"),
    Case("text-missing-file", lambda m: m.path("absent.txt"),
         load_text, InputNotFoundError, "no such file"),
    Case("text-lone-surrogate", lambda m: "ab\ud800c",
         load_text, TextEncodingError, "U+D800 at index 2"),
    Case("text-wrong-type", lambda m: 42,
         load_text, UnsupportedFormatError, "int"),
]
# fmt: on

MODALITY = {load_image: "image", load_audio: "audio", load_video: "video", load_text: "text"}


def _modality(loader: Loader) -> str:
    return MODALITY[getattr(loader, "func", loader)]


def _expected_source(src: object) -> str | None:
    if isinstance(src, Path):
        return str(src)
    if isinstance(src, bytes):
        return f"<bytes len={len(src)}>"
    return None


@pytest.mark.parametrize(
    ("make", "loader", "error", "reason"),
    [case[1:] for case in CORPUS],
    ids=[case.id for case in CORPUS],
)
def test_bad_input_raises_its_typed_error(
    media: Media, make: Maker, loader: Loader, error: type[InputError], reason: str
) -> None:
    src = make(media)
    with pytest.raises(InputError) as caught:
        loader(src)
    err = caught.value
    assert type(err) is error, f"{type(err).__name__}: {err}"
    assert reason in err.reason
    assert err.modality == _modality(loader)
    assert err.source
    expected = _expected_source(src)
    if expected is not None:
        assert err.source == expected
    assert err.source in str(err) or err.source[:200] in str(err)


@pytest.mark.parametrize(
    ("make", "loader"),
    [
        (lambda m: m.write("e.png", b""), load_image),
        (lambda m: m.random("r.wav"), load_audio),
        (lambda m: m.truncated(m.mp4(), "cut.mp4"), load_video),
        (lambda m: b"\xff", load_text),
        (lambda m: (np.array([np.nan]), 8000), load_audio),
    ],
)
def test_name_overrides_the_source_label(media: Media, make: Maker, loader: Loader) -> None:
    with pytest.raises(InputError) as caught:
        loader(make(media), name="sample-17")
    assert caught.value.source == "sample-17"
    assert "'sample-17'" in str(caught.value)


def _damaged(data: bytes, seed: int) -> list[bytes]:
    """Truncations at several points and copies with random bytes overwritten."""
    rng = np.random.default_rng(seed)
    cuts = [data[: int(len(data) * f)] for f in (0.05, 0.3, 0.6, 0.9, 0.99)]
    flipped = []
    for _ in range(6):
        copy = bytearray(data)
        at = rng.integers(0, len(copy), size=max(1, len(copy) // 200))
        copy_array = np.frombuffer(copy, np.uint8).copy()
        copy_array[at] = rng.integers(0, 256, size=len(at), dtype=np.uint8)
        flipped.append(copy_array.tobytes())
    return cuts + flipped


@pytest.mark.parametrize(
    ("make", "loader"),
    [
        (lambda m: m.noise("n.png", "PNG", size=(32, 24)), load_image),
        (lambda m: m.noise("n.jpg", "JPEG", size=(32, 24)), load_image),
        (lambda m: m.noise("n.webp", "WEBP", size=(32, 24)), load_image),
        (lambda m: m.noise("n.gif", "GIF", size=(32, 24)), load_image),
        (lambda m: m.wav(seconds=0.1), load_audio),
        (lambda m: m.wav("t.flac", seconds=0.1, format="FLAC"), load_audio),
        (lambda m: m.wav("t.ogg", seconds=0.1, format="OGG", subtype="VORBIS"), load_audio),
        (lambda m: m.mp3(seconds=0.2), load_audio),
        (lambda m: m.mp4(), load_video),
        (lambda m: m.encode_video(m.path("c.webm"), "webm", "libvpx", "libopus"), load_video),
    ],
    ids=["png", "jpeg", "webp", "gif", "wav", "flac", "ogg", "mp3", "mp4", "webm"],
)
def test_damaged_files_never_leak_a_decoder_exception(
    media: Media, make: Callable[[Media], Path], loader: Loader
) -> None:
    data = make(media).read_bytes()
    for variant in _damaged(data, seed=len(data)):
        try:
            loader(variant)
        except InputError as err:
            assert err.modality == _modality(loader)
