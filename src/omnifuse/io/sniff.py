"""Recognise a media format from its first bytes, whatever the file is called."""

from __future__ import annotations

import os
from pathlib import Path

HEAD_BYTES = 64

IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp", "bmp", "tiff"})
AUDIO_FORMATS = frozenset({"wav", "flac", "mp3", "aac", "aiff", "m4a"})
CONTAINER_FORMATS = frozenset({"ogg", "mp4", "webm", "mkv", "avi"})
"""Containers that may hold audio, video or both."""

_BMP_INFO_HEADER_SIZES = frozenset(
    size.to_bytes(4, "little") for size in (12, 16, 40, 52, 56, 64, 108, 124)
)

_DESCRIPTIONS = {
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "bmp": "a BMP image",
    "tiff": "a TIFF image",
    "wav": "WAV audio",
    "flac": "FLAC audio",
    "mp3": "MP3 audio",
    "aac": "AAC audio",
    "aiff": "AIFF audio",
    "m4a": "M4A audio",
    "ogg": "an Ogg container",
    "mp4": "an MP4 container",
    "webm": "a WebM container",
    "mkv": "a Matroska container",
    "avi": "an AVI container",
}


def sniff_format(
    data_or_path: bytes | bytearray | memoryview | str | os.PathLike[str],
) -> str | None:
    """The format name of ``data_or_path`` from its magic bytes, or None when unrecognised.

    Bytes are inspected directly; a str or path is opened and its first bytes read. Names:
    png, jpeg, gif, webp, bmp, tiff, wav, flac, ogg, mp3, aac, aiff, mp4, m4a, webm, mkv, avi.
    """
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        head = bytes(data_or_path[:HEAD_BYTES])
    else:
        try:
            with Path(data_or_path).open("rb") as fh:
                head = fh.read(HEAD_BYTES)
        except OSError:
            return None
    return _sniff_head(head)


def describe_format(fmt: str) -> str:
    """A phrase for messages: ``describe_format("png") == "a PNG image"``."""
    return _DESCRIPTIONS.get(fmt, fmt)


def _sniff_head(head: bytes) -> str | None:
    return _sniff_riff(head) or _sniff_simple(head) or _sniff_mpeg_audio(head)


def _sniff_riff(head: bytes) -> str | None:
    if head[:4] not in (b"RIFF", b"RIFX", b"RF64") or len(head) < 12:
        return None
    return {b"WAVE": "wav", b"WEBP": "webp", b"AVI ": "avi"}.get(head[8:12])


def _sniff_simple(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and head[14:18] in _BMP_INFO_HEADER_SIZES:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[4:8] == b"ftyp":
        return "m4a" if head[8:12] in (b"M4A ", b"M4B ") else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head else "mkv"
    if head.startswith(b"ID3"):
        return "mp3"
    return None


def _sniff_mpeg_audio(head: bytes) -> str | None:
    """MPEG audio and ADTS AAC share an 11-bit frame sync; the layer bits tell them apart."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    layer = (head[1] >> 1) & 0x03
    if layer == 0:
        return "aac" if head[1] & 0x10 else None
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0x03
    return "mp3" if bitrate_index not in (0, 15) and rate_index != 3 else None
