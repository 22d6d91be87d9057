"""Shared PyAV plumbing: open a container safely, check its duration, decode its soundtrack.

Containers are opened from a Python file object, never from a name, so no FFmpeg protocol
(``http:``, ``concat:``…) can be reached, and only an allow-list of demuxers may claim the
content, so playlist formats that reference other files are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import av
import av.container
import numpy as np

from omnifuse.errors import InputTooLargeError, InvalidValueError
from omnifuse.io.failures import decode_failed, unrecognised
from omnifuse.io.resample import resample
from omnifuse.io.source import EncodedSource

ALLOWED_DEMUXERS = (
    "mov,mp4,m4a,matroska,webm,avi,ogg,mp3,aac,wav,w64,flac,aiff,caf,gif,mpegts,mpeg,flv,asf,amr"
)


@contextmanager
def open_container(
    source: EncodedSource, *, modality: str, known_formats: frozenset[str]
) -> Iterator[av.container.InputContainer]:
    """Open ``source`` for demuxing; unreadable content raises a typed error.

    ``known_formats`` are the sniffed formats that make a failure "corrupt" rather than
    "unsupported".
    """
    with source.open() as fh:
        try:
            container = av.open(fh, mode="r", options={"format_whitelist": ALLOWED_DEMUXERS})
        except Exception as exc:
            fmt = source.sniff()
            if fmt in known_formats:
                raise decode_failed(exc, source=source.label, modality=modality) from None
            raise unrecognised(fmt, source=source.label, modality=modality) from None
        with container:
            yield container


def header_seconds(
    container: av.container.InputContainer, stream: av.stream.Stream
) -> float | None:
    """The duration the headers announce, or None when they do not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def check_seconds(seconds: float, limit: float, *, label: str, modality: str) -> None:
    """Raise ``InputTooLargeError`` when ``seconds`` exceeds ``limit``."""
    if seconds > limit:
        raise InputTooLargeError(
            f"lasts {seconds:.1f} s, over the limit of {limit:g} s", source=label, modality=modality
        )


class SoundtrackDecoder:
    """Collects decoded audio frames into one mono float32 waveform at a target rate.

    Channels are averaged frame by frame so memory holds one channel, and the running duration is
    checked against the limit as samples arrive, whatever the header claimed.
    """

    def __init__(self, *, sample_rate: int, max_seconds: float, label: str, modality: str) -> None:
        self.sample_rate = sample_rate
        self.max_seconds = max_seconds
        self.label = label
        self.modality = modality
        self._resampler = av.AudioResampler(format="fltp")
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._rate: int | None = None

    def add(self, frame: av.AudioFrame | None) -> None:
        """Take one decoded frame; None flushes the format converter."""
        for planar in self._resampler.resample(frame):
            channels = planar.to_ndarray()  # (C, n)
            self._chunks.append(channels[0] if channels.shape[0] == 1 else channels.mean(axis=0))
            self._rate = planar.sample_rate
            self._samples += channels.shape[1]
            check_seconds(
                self._samples / planar.sample_rate,
                self.max_seconds,
                label=self.label,
                modality=self.modality,
            )

    def finish(self) -> np.ndarray:
        """The whole soundtrack, mono at ``sample_rate`` (empty when no sample was decoded)."""
        self.add(None)
        if not self._chunks or self._rate is None:
            return np.zeros(0, dtype=np.float32)
        wave = np.concatenate(self._chunks).astype(np.float32, copy=False)
        if not np.isfinite(wave).all():
            raise InvalidValueError(
                "holds NaN or infinite samples", source=self.label, modality=self.modality
            )
        return resample(wave, self._rate, self.sample_rate)
