"""Audio decoding to mono float32 at a fixed rate, with a duration limit checked from the header.

WAV, FLAC, Ogg and AIFF go through soundfile (libsndfile); MP3, AAC/M4A, WebM/Opus and the
soundtracks of video containers go through PyAV, which is also the fallback whenever soundfile
cannot open a file. The format is decided by content (libsndfile's header parsing, then magic
bytes), never by the file name.

A WAV whose header is intact but which holds no sample raises ``EmptyInputError``; one whose
header itself is cut short raises ``CorruptInputError``.
"""

from __future__ import annotations

import io
import numbers

import numpy as np
import soundfile as sf

from omnifuse.errors import (
    ConfigError,
    EmptyInputError,
    InvalidValueError,
    UnsupportedFormatError,
)
from omnifuse.io.avstream import SoundtrackDecoder, check_seconds, header_seconds, open_container
from omnifuse.io.failures import decoding, unrecognised
from omnifuse.io.limits import DecodeLimits, resolve_limits
from omnifuse.io.resample import resample
from omnifuse.io.sniff import AUDIO_FORMATS, CONTAINER_FORMATS, IMAGE_FORMATS
from omnifuse.io.source import EncodedSource, check_encoded, is_encoded

MODALITY = "audio"
PYAV_PREFERRED = frozenset({"MP3", "MPEG"})
"""libsndfile major formats left to PyAV (FFmpeg's MPEG audio decoder handles gapless MP3)."""
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
"""Sample encodings that can carry NaN or infinity; integer PCM cannot."""
AV_AUDIO_FORMATS = AUDIO_FORMATS | CONTAINER_FORMATS
INT_SCALES = {
    np.dtype(np.int16): 32768.0,
    np.dtype(np.int32): 2147483648.0,
    np.dtype(np.int8): 128.0,
}


def load_audio(
    src: object,
    *,
    sample_rate: int = 16000,
    limits: DecodeLimits | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode ``src`` into a 1-D float32 mono waveform at ``sample_rate``.

    ``src`` is a path, encoded bytes, or an ``(array, rate)`` pair whose array is 1-D or 2-D
    (the shorter axis holds the channels), float or integer PCM. Channels are averaged.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral):
        raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    limits = resolve_limits(limits)
    if is_encoded(src):
        source = check_encoded(src, modality=MODALITY, limits=limits, name=name)
        return _decode_encoded(source, int(sample_rate), limits)
    if isinstance(src, tuple) and len(src) == 2:
        return _from_pair(src[0], src[1], int(sample_rate), limits, name)
    raise UnsupportedFormatError(
        f"cannot load audio from a {type(src).__name__}; pass a path, bytes or (array, rate)",
        source=name or f"<{type(src).__name__}>",
        modality=MODALITY,
    )


def _decode_encoded(source: EncodedSource, sample_rate: int, limits: DecodeLimits) -> np.ndarray:
    """libsndfile first (it identifies its formats from the header as it opens them), PyAV for
    MPEG audio and for whatever libsndfile cannot open, after ruling out images."""
    handle = _open_soundfile(source)
    if handle is not None and handle.format not in PYAV_PREFERRED:
        mono, rate = _read_soundfile(handle, source.label, limits)
        return _finish(mono, rate, sample_rate, source.label)
    if handle is not None:
        handle.close()
    fmt = source.sniff()
    if fmt in IMAGE_FORMATS:
        raise unrecognised(fmt, source=source.label, modality=MODALITY)
    return _decode_with_av(source, sample_rate, limits)


def _open_soundfile(source: EncodedSource) -> sf.SoundFile | None:
    """An open libsndfile handle, or None when libsndfile does not recognise the content."""
    target = str(source.path) if source.path is not None else io.BytesIO(source.read())
    try:
        return sf.SoundFile(target)
    except Exception:
        return None


def _read_soundfile(
    handle: sf.SoundFile, label: str, limits: DecodeLimits
) -> tuple[np.ndarray, int]:
    """Mono samples and their rate; the duration is checked from the header before reading."""
    with handle, decoding(source=label, modality=MODALITY):
        _check_header(handle.frames, handle.samplerate, label, limits)
        samples = handle.read(dtype="float32", always_2d=True)
    if handle.subtype in FLOAT_SUBTYPES and not np.isfinite(samples).all():
        raise InvalidValueError("holds NaN or infinite samples", source=label, modality=MODALITY)
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)
    return mono, handle.samplerate


def _check_header(frames: int, rate: int, label: str, limits: DecodeLimits) -> None:
    if frames <= 0:
        raise EmptyInputError("holds no audio samples", source=label, modality=MODALITY)
    check_seconds(frames / rate, limits.max_audio_seconds, label=label, modality=MODALITY)


def _decode_with_av(source: EncodedSource, sample_rate: int, limits: DecodeLimits) -> np.ndarray:
    with open_container(source, modality=MODALITY, known_formats=AV_AUDIO_FORMATS) as container:
        if not container.streams.audio:
            raise UnsupportedFormatError(
                "has no audio stream", source=source.label, modality=MODALITY
            )
        stream = container.streams.audio[0]
        seconds = header_seconds(container, stream)
        if seconds is not None:
            check_seconds(seconds, limits.max_audio_seconds, label=source.label, modality=MODALITY)
        decoder = SoundtrackDecoder(
            sample_rate=sample_rate,
            max_seconds=limits.max_audio_seconds,
            label=source.label,
            modality=MODALITY,
        )
        with decoding(source=source.label, modality=MODALITY):
            for packet in container.demux(stream):
                for frame in packet.decode():
                    decoder.add(frame)
            wave = decoder.finish()
    if wave.size == 0:
        raise EmptyInputError("holds no audio samples", source=source.label, modality=MODALITY)
    return wave


def _from_pair(
    array: object, rate: object, sample_rate: int, limits: DecodeLimits, name: str | None
) -> np.ndarray:
    wave = np.asarray(array)
    label = name or f"<array shape={wave.shape} rate={rate}>"
    native_rate = _parse_rate(rate, label)
    mono = _to_mono(_to_float(wave, label), label)
    if mono.size == 0:
        raise EmptyInputError("holds no audio samples", source=label, modality=MODALITY)
    if not np.isfinite(mono).all():
        raise InvalidValueError("holds NaN or infinite samples", source=label, modality=MODALITY)
    check_seconds(mono.size / native_rate, limits.max_audio_seconds, label=label, modality=MODALITY)
    return _finish(mono, native_rate, sample_rate, label)


def _parse_rate(rate: object, label: str) -> int:
    """The sample rate of an array input: a positive whole number (``16000`` or ``16000.0``)."""
    if isinstance(rate, numbers.Integral) and not isinstance(rate, bool) and int(rate) > 0:
        return int(rate)
    if isinstance(rate, float) and rate.is_integer() and rate > 0:
        return int(rate)
    raise InvalidValueError(
        f"sample rate {rate!r} is not a positive integer", source=label, modality=MODALITY
    )


def _to_float(wave: np.ndarray, label: str) -> np.ndarray:
    if np.issubdtype(wave.dtype, np.floating):
        return wave.astype(np.float32, copy=False)
    if wave.dtype in INT_SCALES:
        return (wave / INT_SCALES[wave.dtype]).astype(np.float32)
    if wave.dtype == np.uint8:
        return ((wave.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    raise InvalidValueError(
        f"array dtype {wave.dtype} is not float or integer PCM", source=label, modality=MODALITY
    )


def _to_mono(wave: np.ndarray, label: str) -> np.ndarray:
    if wave.ndim == 1:
        return wave
    if wave.ndim == 2:
        channel_axis = 0 if wave.shape[0] < wave.shape[1] else 1
        return wave.mean(axis=channel_axis, dtype=np.float32)
    raise InvalidValueError(
        f"array shape {wave.shape} is neither 1-D nor 2-D", source=label, modality=MODALITY
    )


def _finish(mono: np.ndarray, rate: int, sample_rate: int, label: str) -> np.ndarray:
    wave = resample(mono, rate, sample_rate)
    if wave.size == 0:
        raise EmptyInputError("holds no audio samples", source=label, modality=MODALITY)
    return wave
