"""Short ``world`` video clips with a soundtrack, for audio-visual event classification.

A clip shows two shapes of different shapes and colours. During the same interval both move, in
different directions, and a sound plays; the sound belongs to one of them, the *sounding* object,
and each shape has its own sound (:data:`SHAPE_SOUNDS`: a waveform and a pitch). The event label is
``"<shape>-moves-<direction>"`` of the sounding object.

Both channels are needed: the soundtrack tells which shape is sounding but not where it went, and
the frames show where each shape went but not which one made the sound. A model that uses only the
frames can do no better than guess between the two moving shapes; one that uses only the audio
can do no better than guess the direction among four.

Clips are written as MP4 (H.264 when PyAV's ffmpeg has libx264, else MPEG-4 Part 2) with an AAC
track at 16 kHz, through PyAV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from omnifuse.data.world.render import draw_objects
from omnifuse.data.world.scene import COLOURS, SHAPES

DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
SHAPE_SOUNDS: dict[str, tuple[str, float]] = {
    "circle": ("sine", 440.0),
    "square": ("square", 220.0),
    "triangle": ("triangle", 330.0),
    "star": ("sawtooth", 660.0),
}
EVENTS: tuple[str, ...] = tuple(f"{s}-moves-{d}" for s in SHAPES for d in DIRECTIONS)

RADIUS = 0.13
EDGE_MARGIN = 0.03
TRAVEL = 0.36
MIN_DISTANCE = 2 * RADIUS + 0.04
TONE_AMPLITUDE = 0.4
NOISE_FLOOR = 0.003
FADE_S = 0.015
AUDIO_BIT_RATE = 48_000


@dataclass(frozen=True)
class Mover:
    """A shape that travels in a straight line from ``(x0, y0)`` to ``(x1, y1)`` (fractions)."""

    shape: str
    colour: str
    direction: str
    x0: float
    y0: float
    x1: float
    y1: float

    def position(self, progress: float) -> tuple[float, float]:
        return self.x0 + (self.x1 - self.x0) * progress, self.y0 + (self.y1 - self.y0) * progress

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "colour": self.colour,
            "direction": self.direction,
            "start": [self.x0, self.y0],
            "end": [self.x1, self.y1],
        }


@dataclass(frozen=True)
class Clip:
    """What happens in one clip: both objects move between ``start_s`` and ``end_s``."""

    sounding: Mover
    distractor: Mover
    start_s: float
    end_s: float
    duration_s: float
    background: tuple[int, int, int]

    @property
    def event(self) -> str:
        return f"{self.sounding.shape}-moves-{self.sounding.direction}"

    def progress(self, t: float) -> float:
        """How far along its path each object is at time ``t`` (0 before, 1 after the motion)."""
        return min(1.0, max(0.0, (t - self.start_s) / (self.end_s - self.start_s)))


def event_schedule(count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``count`` (shape, direction) events, each of the :data:`EVENTS` equally often."""
    pairs = [(s, d) for s in SHAPES for d in DIRECTIONS]
    schedule: list[tuple[str, str]] = []
    while len(schedule) < count:
        schedule += [pairs[i] for i in rng.permutation(len(pairs))]
    return schedule[:count]


def sample_clip(rng: np.random.Generator, shape: str, direction: str, duration_s: float) -> Clip:
    """A clip in which a ``shape`` moving ``direction`` makes the sound."""
    other_shape = str(rng.choice([s for s in SHAPES if s != shape]))
    other_direction = str(rng.choice([d for d in DIRECTIONS if d != direction]))
    colour, other_colour = (str(c) for c in rng.choice(list(COLOURS), size=2, replace=False))
    start = float(rng.uniform(0.15, 0.35)) * duration_s
    end = start + float(rng.uniform(0.4, 0.55)) * duration_s
    tint = rng.integers(-12, 13, size=3)
    background = (int(236 + tint[0]), int(236 + tint[1]), int(236 + tint[2]))
    while True:
        sounding = _sample_path(rng, shape, colour, direction)
        distractor = _sample_path(rng, other_shape, other_colour, other_direction)
        if _paths_apart(sounding, distractor):
            return Clip(
                sounding, distractor, round(start, 4), round(end, 4), duration_s, background
            )


def _sample_path(rng: np.random.Generator, shape: str, colour: str, direction: str) -> Mover:
    low, high = RADIUS + EDGE_MARGIN, 1.0 - RADIUS - EDGE_MARGIN
    dx, dy = DIRECTIONS[direction]
    x0 = float(rng.uniform(low + TRAVEL * (dx < 0), high - TRAVEL * (dx > 0)))
    y0 = float(rng.uniform(low + TRAVEL * (dy < 0), high - TRAVEL * (dy > 0)))
    x0, y0 = round(x0, 4), round(y0, 4)
    return Mover(
        shape, colour, direction, x0, y0, round(x0 + dx * TRAVEL, 4), round(y0 + dy * TRAVEL, 4)
    )


def _paths_apart(a: Mover, b: Mover, steps: int = 13) -> bool:
    """Whether the two objects never touch while moving in step."""
    for p in np.linspace(0.0, 1.0, steps):
        (ax, ay), (bx, by) = a.position(float(p)), b.position(float(p))
        if math.hypot(ax - bx, ay - by) < MIN_DISTANCE:
            return False
    return True


def frame_count(duration_s: float, fps: int) -> int:
    return max(1, round(duration_s * fps))


def render_frames(clip: Clip, size: int, fps: int) -> np.ndarray:
    """The frames of ``clip`` as uint8 ``[N, size, size, 3]``."""
    frames = []
    for i in range(frame_count(clip.duration_s, fps)):
        progress = clip.progress(i / fps)
        objects = []
        for mover in (clip.distractor, clip.sounding):
            x, y = mover.position(progress)
            objects.append((mover.shape, mover.colour, x, y, RADIUS))
        frames.append(np.asarray(draw_objects(size, clip.background, objects)))
    return np.stack(frames)


def tone(shape: str, seconds: float, sample_rate: int) -> np.ndarray:
    """The band-limited sound of ``shape``: its waveform at its pitch, built from harmonics."""
    waveform, freq = SHAPE_SOUNDS[shape]
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = np.zeros_like(t)
    nyquist = sample_rate / 2
    for k in range(1, int(nyquist // freq) + 1):
        if waveform == "sine" and k > 1:
            break
        if waveform in ("square", "triangle") and k % 2 == 0:
            continue
        amplitude = (-1) ** ((k - 1) // 2) / k**2 if waveform == "triangle" else 1.0 / k
        wave += amplitude * np.sin(2 * np.pi * k * freq * t)
    peak = float(np.max(np.abs(wave))) or 1.0
    return (wave / peak).astype(np.float32)


def soundtrack(clip: Clip, sample_rate: int, fps: int, rng: np.random.Generator) -> np.ndarray:
    """The audio of ``clip``: a faint noise floor, and the sounding shape's tone while it moves."""
    total = round(frame_count(clip.duration_s, fps) / fps * sample_rate)
    audio = rng.normal(0.0, NOISE_FLOOR, size=total).astype(np.float32)
    first, last = round(clip.start_s * sample_rate), round(clip.end_s * sample_rate)
    sound = tone(clip.sounding.shape, (last - first) / sample_rate, sample_rate)
    fade = min(round(FADE_S * sample_rate), len(sound) // 2)
    envelope = np.ones(len(sound), dtype=np.float32)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        envelope[:fade], envelope[-fade:] = ramp, ramp[::-1]
    audio[first : first + len(sound)] += TONE_AMPLITUDE * sound * envelope
    return np.clip(audio, -1.0, 1.0)


def video_codec() -> str:
    """H.264 when this PyAV build can encode it, else MPEG-4 Part 2 (always bundled)."""
    try:
        av.codec.Codec("libx264", "w")
    except Exception:
        return "mpeg4"
    return "libx264"


def write_mp4(
    path: Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    *,
    lossless: bool = False,
) -> None:
    """Encode ``frames`` (uint8 ``[N, H, W, 3]``) and mono ``audio`` into one MP4 file; with
    ``audio`` None the file has no sound stream at all (a camera that records no sound).

    ``lossless`` (H.264 at QP 0; MPEG-4 Part 2 has no lossless mode and gets its finest scale)
    makes the decoded frames exactly the YUV 4:2:0 frames given, whatever choices the encoder
    makes: lossy x264 output can differ from one run to another in a few pixels.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = video_codec()
    if codec == "libx264":
        options = {"qp": "0", "threads": "1"} if lossless else {"crf": "18", "threads": "1"}
    else:
        options = {"qscale": "1" if lossless else "3"}
    with av.open(str(path), "w", format="mp4") as container:
        vstream = container.add_stream(codec, rate=fps, options=options)
        if not isinstance(vstream, av.VideoStream):
            raise TypeError(f"{codec} did not give a video stream")
        vstream.width, vstream.height = int(frames.shape[2]), int(frames.shape[1])
        vstream.pix_fmt = "yuv420p"
        vstream.thread_count = 1  # threaded encoders make output bytes depend on timing
        astream = None if audio is None else container.add_stream("aac", rate=sample_rate)
        if astream is not None:  # every stream exists before the first packet
            astream.layout = "mono"
            astream.bit_rate = AUDIO_BIT_RATE
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts = i
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        if audio is None or astream is None:
            return
        chunk = 1024
        for start in range(0, len(audio), chunk):
            samples = np.ascontiguousarray(audio[start : start + chunk], dtype=np.float32)[None, :]
            aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            aframe.sample_rate = sample_rate
            aframe.pts = start
            container.mux(astream.encode(aframe))
        container.mux(astream.encode(None))
