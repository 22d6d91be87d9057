"""Media files generated on the fly (PIL, soundfile, PyAV, hand-written PNG chunks) for io tests."""

from __future__ import annotations

import fractions
import io
import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

TONE_HZ = 440.0
VIDEO_FPS = 10
VIDEO_FRAMES = 20
VIDEO_SIZE = (64, 48)
SQUARE = 8
SQUARE_ROWS = slice(16, 32)


def tone(seconds: float, rate: int, *, freq: float = TONE_HZ, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine of ``freq`` Hz."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray, rate: int) -> float:
    """Frequency of the largest bin of the magnitude spectrum."""
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * rate / len(wave))


def square_x(k: int) -> int:
    """Left edge of the white square in frame ``k`` of a generated video."""
    return 4 + 2 * k


def square_centre(frame: np.ndarray) -> float:
    """Mean column of the bright pixels in the square's rows (recovers the frame index)."""
    columns = np.nonzero(frame[SQUARE_ROWS].mean(axis=(0, 2)) > 128)[0]
    return float(columns.mean())


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_bytes(width: int, height: int, *, bit_depth: int, color_type: int, row: bytes) -> bytes:
    """A valid PNG built chunk by chunk whose every row holds ``row``, streamed through zlib.

    A 20000x20000 1-bit image costs a few kilobytes this way without allocating its pixels.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    packer = zlib.compressobj(9)
    line = b"\x00" + row
    parts = [packer.compress(line) for _ in range(height)]
    data = b"".join(parts) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", data)
        + png_chunk(b"IEND", b"")
    )


def bomb_png(width: int, height: int) -> bytes:
    """A 1-bit black PNG of the given size: tiny on disk, huge once decoded."""
    return png_bytes(width, height, bit_depth=1, color_type=0, row=bytes((width + 7) // 8))


def rgb16_png(color: tuple[int, int, int], size: int = 4) -> bytes:
    """A 16-bit-per-channel RGB PNG, which PIL itself cannot write."""
    pixel = struct.pack(">HHH", *color)
    return png_bytes(size, size, bit_depth=16, color_type=2, row=pixel * size)


def wav_header(rate: int = 16000, channels: int = 1, data_bytes: int = 0) -> bytes:
    """A 44-byte PCM16 WAV header announcing ``data_bytes`` of samples."""
    block = channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def encode_audio(path: Path, container: str, codec: str, wave: np.ndarray, rate: int) -> Path:
    """Encode a mono float waveform with PyAV (mp3, aac, opus…)."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        _encode_wave(out, stream, wave, rate)
    return path


def _encode_wave(
    out: av.container.OutputContainer, stream: av.AudioStream, wave: np.ndarray, rate: int
) -> None:
    context = stream.codec_context
    size = context.frame_size or 1024
    fmt = context.format.name
    for i in range(0, len(wave), size):
        chunk = wave[None, i : i + size]
        if fmt.startswith("s16"):
            chunk = (chunk * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            chunk = (chunk * (2**31 - 1)).astype(np.int32)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        frame.time_base = fractions.Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def encode_song_with_cover(path: Path) -> Path:
    """An MP4 holding a 0.5 s tone and a PNG cover: a video stream that is only a still."""
    cover = io.BytesIO()
    Image.new("RGB", (16, 16), (255, 0, 0)).save(cover, "PNG")
    with av.open(str(path), "w", format="mp4") as out:
        audio = out.add_stream("aac", rate=16000, layout="mono")
        picture = out.add_stream("png")
        assert isinstance(audio, av.AudioStream) and isinstance(picture, av.VideoStream)
        picture.width = picture.height = 16
        picture.pix_fmt = "rgb24"
        picture.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(cover.getvalue())
        packet.stream = picture
        packet.pts = packet.dts = 0
        packet.time_base = fractions.Fraction(1, 1)
        out.mux(packet)
        _encode_wave(out, audio, tone(0.5, 16000), 16000)
    return path


def encode_video(
    path: Path,
    container: str,
    codec: str,
    audio_codec: str | None,
    *,
    frames: int = VIDEO_FRAMES,
    audio_rate: int = 48000,
    muxer_options: dict[str, str] | None = None,
) -> Path:
    """A 2 s clip at 10 fps: a white 8x8 square moving 2 px a frame, and a 440 Hz tone."""
    width, height = VIDEO_SIZE
    with av.open(str(path), "w", format=container, options=muxer_options or {}) as out:
        video = out.add_stream(codec, rate=VIDEO_FPS)
        assert isinstance(video, av.VideoStream)
        video.width, video.height = width, height
        video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "mpeg4":
            video.options = {"qscale": "2"}
        audio = out.add_stream(audio_codec, rate=audio_rate, layout="mono") if audio_codec else None
        for k in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[SQUARE_ROWS, square_x(k) : square_x(k) + SQUARE] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            frame.time_base = fractions.Fraction(1, VIDEO_FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            assert isinstance(audio, av.AudioStream)
            _encode_wave(out, audio, tone(frames / VIDEO_FPS, audio_rate), audio_rate)
    return path


class Media:
    """Writes generated media into one test's temporary folder; carries the signal helpers so
    test modules reach them through the ``media`` fixture rather than by importing conftest."""

    tone = staticmethod(tone)
    peak_hz = staticmethod(peak_hz)
    square_x = staticmethod(square_x)
    square_centre = staticmethod(square_centre)
    bomb_png = staticmethod(bomb_png)
    rgb16_png = staticmethod(rgb16_png)
    wav_header = staticmethod(wav_header)
    encode_audio = staticmethod(encode_audio)
    encode_video = staticmethod(encode_video)
    VIDEO_FPS = VIDEO_FPS
    VIDEO_FRAMES = VIDEO_FRAMES
    VIDEO_SIZE = VIDEO_SIZE
    TONE_HZ = TONE_HZ

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    def write(self, name: str, data: bytes) -> Path:
        path = self.path(name)
        path.write_bytes(data)
        return path

    def image(self, name: str, img: Image.Image, fmt: str, **options: object) -> Path:
        path = self.path(name)
        img.save(path, fmt, **options)
        return path

    def red_png(self, name: str = "red.png", size: tuple[int, int] = (8, 6)) -> Path:
        return self.image(name, Image.new("RGB", size, (255, 0, 0)), "PNG")

    def jpeg(self, name: str = "photo.jpg", size: tuple[int, int] = (64, 48)) -> Path:
        gradient = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
        return self.image(name, Image.fromarray(gradient.astype(np.uint8)), "JPEG", quality=90)

    def noise(self, name: str, fmt: str, size: tuple[int, int] = (96, 64)) -> Path:
        """Random pixels: no compressor can shrink them, so any cut lands inside pixel data."""
        pixels = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        return self.image(name, Image.fromarray(pixels), fmt)

    def wav(
        self, name: str = "tone.wav", seconds: float = 0.5, rate: int = 16000, **options: object
    ) -> Path:
        path = self.path(name)
        options.setdefault("format", "WAV")
        sf.write(path, tone(seconds, rate), rate, **options)
        return path

    def float_wav(self, name: str, samples: list[float], rate: int = 16000) -> Path:
        path = self.path(name)
        sf.write(path, np.asarray(samples, np.float32), rate, format="WAV", subtype="FLOAT")
        return path

    def mp3(self, name: str = "tone.mp3", seconds: float = 0.5, rate: int = 44100) -> Path:
        return encode_audio(self.path(name), "mp3", "mp3", tone(seconds, rate), rate)

    def mp4(self, name: str = "clip.mp4", audio: bool = True) -> Path:
        return encode_video(self.path(name), "mp4", "mpeg4", "aac" if audio else None)

    def song_with_cover(self, name: str = "song.mp4") -> Path:
        return encode_song_with_cover(self.path(name))

    def truncated(self, source: Path, name: str, keep: float = 0.5) -> Path:
        data = source.read_bytes()
        return self.write(name, data[: int(len(data) * keep)])

    def random(self, name: str, size: int = 4096, seed: int = 0) -> Path:
        return self.write(name, np.random.default_rng(seed).bytes(size))


@pytest.fixture
def media(tmp_path: Path) -> Media:
    return Media(tmp_path)
