"""Decoding throughput: omnifuse.io loaders against the bare library call on the same files.

Generates its own media in a temporary folder, then times each modality twice per round: the
reference (what a caller would write without omnifuse) and the omnifuse loader doing the same
work plus its safety checks. The best round of each is kept; the ratio is omnifuse items/s over
reference items/s, so 1.0 means no overhead.

    python bench/decode.py                 # about a minute on 2 cores
    python bench/decode.py --images 20 --repeat 1
"""

from __future__ import annotations

import argparse
import fractions
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

from benchkit import markdown_table
from omnifuse.io import load_audio, load_image, load_text, load_video
from omnifuse.io.resample import resample

TARGET_RATE = 16000
VIDEO_FRAMES = 8


@dataclass(frozen=True)
class Case:
    """One row: the files, the reference decode and the omnifuse decode of one file."""

    name: str
    reference_label: str
    files: Sequence[Path]
    reference: Callable[[Path], object]
    omnifuse: Callable[[Path], object]


@dataclass(frozen=True)
class Result:
    case: Case
    reference_per_s: float
    omnifuse_per_s: float

    @property
    def ratio(self) -> float:
        return self.omnifuse_per_s / self.reference_per_s

    def cells(self) -> list[str]:
        speeds = [f"{self.reference_per_s:,.1f}", f"{self.omnifuse_per_s:,.1f}"]
        case = self.case
        return [case.name, str(len(case.files)), case.reference_label, *speeds, f"{self.ratio:.2f}"]


# -- media generation -------------------------------------------------------------------------


def _photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour gradients plus noise: compresses like a photograph, not like a flat fill."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    channels = [
        127 + 100 * np.sin(x / (37 + 11 * c) + y / (53 + 7 * c) + phase[c]) for c in range(3)
    ]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _crop(rng: np.random.Generator, scene: Image.Image, width: int, height: int) -> Image.Image:
    left = int(rng.integers(0, scene.width - width + 1))
    top = int(rng.integers(0, scene.height - height + 1))
    return scene.crop((left, top, left + width, top + height))


def _tone(seconds: float, rate: int, freq: float) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write_mp3(path: Path, wave: np.ndarray, rate: int) -> None:
    with av.open(str(path), "w", format="mp3") as out:
        stream = out.add_stream("mp3", rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        _encode_audio(out, stream, wave, rate)


def _encode_audio(
    out: av.container.OutputContainer, stream: av.AudioStream, wave: np.ndarray, rate: int
) -> None:
    size = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.format.name
    for start in range(0, len(wave), size):
        chunk = wave[None, start : start + size]
        if fmt.startswith("s32"):
            chunk = (chunk * (2**31 - 1)).astype(np.int32)
        elif fmt.startswith("s16"):
            chunk = (chunk * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = fractions.Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _write_mp4(path: Path, rng: np.random.Generator, seconds: float) -> None:
    """320x240 MPEG-4 at 25 fps with a moving gradient, plus an AAC tone at 44.1 kHz."""
    fps, rate = 25, 44100
    base = np.asarray(_photo(rng, 320 + 100, 240))
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=fps)
        audio = out.add_stream("aac", rate=rate, layout="mono")
        assert isinstance(video, av.VideoStream) and isinstance(audio, av.AudioStream)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        for k in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(base[:, k % 100 : k % 100 + 320]), format="rgb24"
            )
            frame.pts = k
            frame.time_base = fractions.Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        _encode_audio(out, audio, _tone(seconds, rate, 440.0), rate)


def _write_text(path: Path, rng: np.random.Generator, chars: int) -> None:
    """Mixed-script words with runs of spaces, tabs and CRLF line breaks to normalise."""
    words = np.array(
        [
            "omnifuse",
            "caf\u00e9",
            "na\u00efve",
            "\u6587\u5b57",
            "fusion",
            "  spaced",
            "\tword",
            "line\r\n",
        ]
    )
    picked = rng.choice(words, size=chars // 6)
    path.write_bytes(" ".join(picked.tolist())[:chars].encode("utf-8"))


def generate(root: Path, counts: argparse.Namespace, seed: int) -> dict[str, list[Path]]:
    """Write every benchmark file under ``root``; returns the files per row name."""
    rng = np.random.default_rng(seed)
    files: dict[str, list[Path]] = {key: [] for key in ("jpeg", "png", "wav16", "wav44", "mp3")}
    files.update(mp4=[], text=[])
    scenes = [_photo(rng, 800, 600) for _ in range(4)]
    for i in range(counts.images):
        jpeg = root / f"photo{i}.jpg"
        _crop(rng, scenes[i % 4], 640, 480).save(jpeg, "JPEG", quality=90)
        png = root / f"picture{i}.png"
        _crop(rng, scenes[i % 4], 256, 256).save(png, "PNG")
        files["jpeg"].append(jpeg)
        files["png"].append(png)
    for i in range(counts.audio):
        freq = float(rng.uniform(200, 2000))
        wav16 = root / f"mono{i}.wav"
        sf.write(wav16, _tone(5.0, 16000, freq), 16000, subtype="PCM_16")
        wav44 = root / f"stereo{i}.wav"
        left = _tone(5.0, 44100, freq)
        sf.write(wav44, np.stack([left, 0.5 * left], axis=1), 44100, subtype="PCM_16")
        mp3 = root / f"song{i}.mp3"
        _write_mp3(mp3, _tone(5.0, 44100, freq), 44100)
        files["wav16"].append(wav16)
        files["wav44"].append(wav44)
        files["mp3"].append(mp3)
    for i in range(counts.videos):
        mp4 = root / f"clip{i}.mp4"
        _write_mp4(mp4, rng, 3.0)
        files["mp4"].append(mp4)
    for i in range(counts.texts):
        text = root / f"note{i}.txt"
        _write_text(text, rng, 10_000)
        files["text"].append(text)
    return files


# -- reference decoders: the bare library calls --------------------------------------------------


def pil_rgb(path: Path) -> object:
    with Image.open(path) as img:
        return img.convert("RGB")


def soundfile_read(path: Path) -> object:
    return sf.read(path, dtype="float32")[0]


def soundfile_mono_resampled(path: Path) -> object:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return resample(samples.mean(axis=1), rate, TARGET_RATE)


def pyav_audio(path: Path) -> object:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="fltp")
        chunks = [
            out.to_ndarray().mean(axis=0)
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
        rate = container.streams.audio[0].rate
    return resample(np.concatenate(chunks), rate, TARGET_RATE)


def pyav_video(path: Path) -> object:
    """Decode every video frame (threaded, as omnifuse does), keep 8 evenly spaced as RGB, and
    decode the soundtrack to mono 16 kHz."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = list(container.decode(stream))
        picks = np.linspace(0, len(frames) - 1, VIDEO_FRAMES).round().astype(int)
        rgb = np.stack([frames[i].to_ndarray(format="rgb24") for i in picks])
    return rgb, pyav_audio(path)


def utf8_decode(path: Path) -> object:
    return path.read_bytes().decode("utf-8")


# -- timing -------------------------------------------------------------------------------------


def cases(files: dict[str, list[Path]]) -> list[Case]:
    return [
        Case("image JPEG 640x480", "PIL open+convert RGB", files["jpeg"], pil_rgb, load_image),
        Case("image PNG 256x256", "PIL open+convert RGB", files["png"], pil_rgb, load_image),
        Case("audio WAV 16k mono 5 s", "soundfile.read", files["wav16"], soundfile_read,
             load_audio),
        Case("audio WAV 44.1k stereo 5 s", "soundfile.read+mix+resample", files["wav44"],
             soundfile_mono_resampled, load_audio),
        Case("audio MP3 44.1k 5 s", "PyAV decode+mix+resample", files["mp3"], pyav_audio,
             load_audio),
        Case("video MP4 320x240 3 s", "PyAV decode all+8 RGB+audio", files["mp4"], pyav_video,
             lambda p: load_video(p, num_frames=VIDEO_FRAMES)),
        Case("text UTF-8 10k chars", "bytes.decode", files["text"], utf8_decode, load_text),
    ]  # fmt: skip


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def measure(case: Case, repeat: int, clock: Callable[[], float]) -> Result:
    """Best of ``repeat`` rounds after a warm-up. Within a round the two decoders take turns on
    each file, the one going first alternating, so drift in clock speed or caches hits both."""
    for path in case.files[:2]:
        case.reference(path)
        case.omnifuse(path)
    best_reference, best_omnifuse = float("inf"), float("inf")
    for round_index in range(repeat):
        spent = {"reference": 0.0, "omnifuse": 0.0}
        for i, path in enumerate(case.files):
            turns = [("reference", case.reference), ("omnifuse", case.omnifuse)]
            for side, decode in turns if (i + round_index) % 2 == 0 else turns[::-1]:
                start = clock()
                decode(path)
                spent[side] += clock() - start
        best_reference = min(best_reference, spent["reference"])
        best_omnifuse = min(best_omnifuse, spent["omnifuse"])
    count = len(case.files)
    return Result(case, count / best_reference, count / best_omnifuse)


def render(results: Sequence[Result]) -> str:
    head = ["input", "files", "reference call", "reference items/s", "omnifuse items/s", "ratio"]
    return markdown_table(head, [r.cells() for r in results], "lrlrrr")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100, help="JPEG and PNG files each (100)")
    parser.add_argument("--audio", type=int, default=40, help="WAV 16k, WAV 44.1k, MP3 each (40)")
    parser.add_argument("--videos", type=int, default=16, help="MP4 clips (16)")
    parser.add_argument("--texts", type=int, default=300, help="UTF-8 text files (300)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds, best kept (5)")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: CPU seconds of this process, all its threads (steady on a shared machine);\n"
        "wall: elapsed seconds (default: cpu)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated media (0)")
    args = parser.parse_args(argv)
    for name in ("images", "audio", "videos", "texts", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}, Pillow {Image.__version__}, "
        f"soundfile {sf.__version__}, PyAV {av.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="omnifuse-bench-") as tmp:
        started = time.perf_counter()
        files = generate(Path(tmp), args, args.seed)
        print(f"generated media in {time.perf_counter() - started:.1f} s")
        results = [measure(case, args.repeat, CLOCKS[args.clock]) for case in cases(files)]
    print(f"items per {args.clock} second, best of {args.repeat} rounds")
    print(render(results))
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
