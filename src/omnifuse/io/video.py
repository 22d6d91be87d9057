"""Video decoding with PyAV: N frames sampled uniformly over the duration, plus the soundtrack.

The file is read in one pass: video and audio packets are demuxed together, video frames are
decoded until the last sampled instant has been passed, and only the sampled frames are
converted to RGB. Frame ``i`` of ``N`` is the frame on screen at ``(i + 0.5) * duration / N``.
"""

from __future__ import annotations

import numbers
from contextlib import AbstractContextManager
from dataclasses import dataclass

import av
import av.container
import numpy as np

from omnifuse.errors import (
    ConfigError,
    EmptyInputError,
    InputTooLargeError,
    UnsupportedFormatError,
)
from omnifuse.io.avstream import SoundtrackDecoder, check_seconds, header_seconds, open_container
from omnifuse.io.failures import decoding, unrecognised
from omnifuse.io.limits import DecodeLimits, resolve_limits
from omnifuse.io.sniff import AUDIO_FORMATS, CONTAINER_FORMATS, IMAGE_FORMATS
from omnifuse.io.source import EncodedSource, check_encoded, is_encoded

MODALITY = "video"
VIDEO_FORMATS = CONTAINER_FORMATS | {"gif"}
NOT_VIDEO_FORMATS = (IMAGE_FORMATS | AUDIO_FORMATS) - VIDEO_FORMATS


@dataclass
class VideoClip:
    """Sampled frames (uint8 [N, H, W, 3]) with their times in seconds from the start, and the
    whole soundtrack (mono float32 at ``sample_rate``; None when the file has no sound).

    ``fps`` is the stream's average frame rate (0.0 when the file does not say).
    """

    frames: np.ndarray
    frame_times: np.ndarray
    audio: np.ndarray | None
    sample_rate: int
    fps: float
    duration_s: float


def load_video(
    src: object,
    *,
    num_frames: int = 8,
    sample_rate: int = 16000,
    limits: DecodeLimits | None = None,
    name: str | None = None,
) -> VideoClip:
    """Decode ``num_frames`` frames sampled over the whole of ``src`` (a path or bytes) and its
    soundtrack. A clip with fewer frames than asked repeats frames, so the shape is constant.
    """
    _check_arguments(num_frames, sample_rate)
    limits = resolve_limits(limits)
    if not is_encoded(src):
        raise UnsupportedFormatError(
            f"cannot load a video from a {type(src).__name__}; pass a path or bytes",
            source=name or f"<{type(src).__name__}>",
            modality=MODALITY,
        )
    source = check_encoded(src, modality=MODALITY, limits=limits, name=name)
    fmt = source.sniff()
    if fmt in NOT_VIDEO_FORMATS:
        raise unrecognised(fmt, source=source.label, modality=MODALITY)
    return _decode(source, int(num_frames), int(sample_rate), limits)


def _check_arguments(num_frames: object, sample_rate: object) -> None:
    for name, value in (("num_frames", num_frames), ("sample_rate", sample_rate)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _decode(
    source: EncodedSource, num_frames: int, sample_rate: int, limits: DecodeLimits
) -> VideoClip:
    """One pass when the headers state the duration; otherwise a timestamp scan, then a pass
    over a freshly opened container (seeking back would drop the first audio packets)."""
    request = _Request(source.label, num_frames, sample_rate, limits)
    with _opened(source) as container, decoding(source=source.label, modality=MODALITY):
        video = _video_stream(container, source.label)
        duration = header_seconds(container, video)
        if duration:
            return _read_clip(container, video, duration, request)
        duration = _scan_duration(container, video, source.label, limits)
    with _opened(source) as container, decoding(source=source.label, modality=MODALITY):
        return _read_clip(container, _video_stream(container, source.label), duration, request)


@dataclass(frozen=True)
class _Request:
    label: str
    num_frames: int
    sample_rate: int
    limits: DecodeLimits


def _opened(source: EncodedSource) -> AbstractContextManager[av.container.InputContainer]:
    return open_container(source, modality=MODALITY, known_formats=VIDEO_FORMATS)


def _video_stream(
    container: av.container.InputContainer, label: str
) -> av.video.stream.VideoStream:
    """The first video stream that is not a still (cover art attached to an audio file)."""
    still = av.stream.Disposition.attached_pic | av.stream.Disposition.still_image
    for stream in container.streams.video:
        if not stream.disposition & still:
            return stream
    raise UnsupportedFormatError("has no video stream", source=label, modality=MODALITY)


def _read_clip(
    container: av.container.InputContainer,
    video: av.video.stream.VideoStream,
    duration: float,
    request: _Request,
) -> VideoClip:
    label, num_frames, limits = request.label, request.num_frames, request.limits
    audio = container.streams.audio[0] if container.streams.audio else None
    check_seconds(duration, limits.max_video_seconds, label=label, modality=MODALITY)
    _check_pixels(video.codec_context.width, video.codec_context.height, label, limits)
    video.thread_type = "AUTO"
    fps = _fps(video)
    sampler = FrameSampler(
        (np.arange(num_frames) + 0.5) * duration / num_frames,
        start=_start_seconds(video),
        fps=fps,
        label=label,
        limits=limits,
    )
    soundtrack = (
        SoundtrackDecoder(
            sample_rate=request.sample_rate,
            max_seconds=limits.max_video_seconds,
            label=label,
            modality=MODALITY,
        )
        if audio is not None
        else None
    )
    streams = [video] if audio is None else [video, audio]
    for packet in container.demux(streams):
        if packet.stream.index == video.index:
            if sampler.done and soundtrack is None:
                break
            if not sampler.done:
                for frame in packet.decode():
                    sampler.add(frame)  # type: ignore[arg-type]
        elif soundtrack is not None:
            for frame in packet.decode():
                soundtrack.add(frame)  # type: ignore[arg-type]
    frames, times = sampler.finish()
    wave = soundtrack.finish() if soundtrack is not None else None
    return VideoClip(
        frames=frames,
        frame_times=times,
        audio=wave if wave is not None and wave.size > 0 else None,
        sample_rate=request.sample_rate,
        fps=fps,
        duration_s=float(duration),
    )


def _start_seconds(stream: av.video.stream.VideoStream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def _scan_duration(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    label: str,
    limits: DecodeLimits,
) -> float:
    """Duration from packet timestamps, for files whose headers do not state it."""
    start = _start_seconds(stream)
    time_base = float(stream.time_base) if stream.time_base is not None else 0.0
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None:
            end = max(end, (packet.pts + (packet.duration or 0)) * time_base - start)
            check_seconds(end, limits.max_video_seconds, label=label, modality=MODALITY)
    return end


class FrameSampler:
    """Picks, from frames arriving in display order, the one on screen at each target time."""

    def __init__(
        self, targets: np.ndarray, *, start: float, fps: float, label: str, limits: DecodeLimits
    ) -> None:
        self.targets = targets
        self.start = start
        self.fps = fps
        self.label = label
        self.limits = limits
        self._picked: list[tuple[av.VideoFrame, float]] = []
        self._previous: tuple[av.VideoFrame, float] | None = None
        self._count = 0

    @property
    def done(self) -> bool:
        return len(self._picked) >= len(self.targets)

    def add(self, frame: av.VideoFrame) -> None:
        """Take the next decoded frame; frames before it are settled once its time is known."""
        if self._count == 0:
            _check_pixels(frame.width, frame.height, self.label, self.limits)
        time = self._time(frame)
        self._count += 1
        while not self.done and time > self.targets[len(self._picked)]:
            self._picked.append(self._previous or (frame, time))
        self._previous = (frame, time)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Sampled frames as uint8 [N, H, W, 3] and their times, all at the first frame's size."""
        if self._previous is None:
            raise EmptyInputError("holds no video frames", source=self.label, modality=MODALITY)
        while not self.done:
            self._picked.append(self._previous)
        first = self._picked[0][0]
        converted: dict[int, np.ndarray] = {}
        for frame, _ in self._picked:
            if id(frame) not in converted:
                converted[id(frame)] = frame.to_ndarray(
                    format="rgb24", width=first.width, height=first.height
                )
        frames = np.stack([converted[id(frame)] for frame, _ in self._picked])
        times = np.array([time for _, time in self._picked], dtype=np.float64)
        return frames, times

    def _time(self, frame: av.VideoFrame) -> float:
        if frame.time is None:
            return self._count / self.fps if self.fps else float(self._count)
        time = float(frame.time) - self.start
        check_seconds(time, self.limits.max_video_seconds, label=self.label, modality=MODALITY)
        return time


def _check_pixels(width: int, height: int, label: str, limits: DecodeLimits) -> None:
    if width * height > limits.max_pixels:
        raise InputTooLargeError(
            f"frames are {width}x{height} = {width * height} pixels, over the limit of "
            f"{limits.max_pixels}",
            source=label,
            modality=MODALITY,
        )
