"""Text loading: strict UTF-8, Unicode NFC, control characters out, whitespace collapsed.

Line breaks of every kind (those of ``str.splitlines``: CR, CRLF, VT, FF, NEL, the Unicode line
and paragraph separators, the ASCII record separators) become ``\\n``; runs of spaces and tabs
become one space; blank lines disappear, so paragraphs are separated by a single newline. The
length limit applies to the decoded text before normalisation, so normalising never runs on an
oversized input.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from omnifuse.errors import (
    EmptyInputError,
    InputTooLargeError,
    TextEncodingError,
    UnsupportedFormatError,
)
from omnifuse.io.limits import DecodeLimits, resolve_limits
from omnifuse.io.source import check_encoded, describe_bytes

MODALITY = "text"
UTF8_BOM = b"\xef\xbb\xbf"
MAX_UTF8_BYTES_PER_CHAR = 4

_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")
"""Control characters other than tab and those ``str.splitlines`` treats as line breaks."""
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def load_text(
    src: str | bytes | bytearray | memoryview | os.PathLike[str],
    *,
    limits: DecodeLimits | None = None,
    name: str | None = None,
    normalize: bool = True,
) -> str:
    """The text of ``src``: a str is the text itself, bytes are UTF-8, a Path names a file.

    With ``normalize=False`` the decoded text is returned unchanged (BOM aside); it must still
    hold something other than whitespace.
    """
    limits = resolve_limits(limits)
    if isinstance(src, str):
        label = name or f"<text len={len(src)}>"
        text = src
    elif isinstance(src, (bytes, bytearray, memoryview, os.PathLike)):
        label, text = _decode(src, limits, name)
    else:
        raise UnsupportedFormatError(
            f"cannot load text from a {type(src).__name__}; pass a str, bytes or a Path",
            source=name or f"<{type(src).__name__}>",
            modality=MODALITY,
        )
    _check_length(len(text), label, limits)
    _check_surrogates(text, label)
    result = normalize_text(text) if normalize else text
    if not result.strip():
        raise EmptyInputError("holds no text", source=label, modality=MODALITY)
    return result


def normalize_text(text: str) -> str:
    """NFC, line breaks unified, control characters removed, whitespace collapsed, stripped."""
    text = _CONTROLS.sub("", unicodedata.normalize("NFC", text))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _decode(
    src: bytes | bytearray | memoryview | os.PathLike[str], limits: DecodeLimits, name: str | None
) -> tuple[str, str]:
    """Label and decoded text of a byte buffer or a file."""
    label = name or (str(Path(src)) if isinstance(src, os.PathLike) else describe_bytes(src))
    source = check_encoded(src, modality=MODALITY, limits=limits, name=label)
    if source.size > MAX_UTF8_BYTES_PER_CHAR * limits.max_text_chars + len(UTF8_BOM):
        _too_long(f"{source.size} bytes", label, limits)
    data = source.read()
    offset = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    try:
        return label, data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[offset + exc.start : offset + exc.start + 4]
        raise TextEncodingError(
            f"is not valid UTF-8: {exc.reason} at byte offset {offset + exc.start} ({bad!r})",
            source=label,
            modality=MODALITY,
        ) from None


def _check_length(chars: int, label: str, limits: DecodeLimits) -> None:
    if chars > limits.max_text_chars:
        _too_long(f"{chars} characters", label, limits)


def _too_long(size: str, label: str, limits: DecodeLimits) -> None:
    raise InputTooLargeError(
        f"is {size}, over the limit of {limits.max_text_chars} characters",
        source=label,
        modality=MODALITY,
    )


def _check_surrogates(text: str, label: str) -> None:
    """A str holding lone surrogates cannot be encoded anywhere downstream."""
    match = _SURROGATE.search(text)
    if match is not None:
        raise TextEncodingError(
            f"holds a lone surrogate U+{ord(match.group()):04X} at index {match.start()}",
            source=label,
            modality=MODALITY,
        )
