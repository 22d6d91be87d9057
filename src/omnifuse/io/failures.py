"""Turn a decoder's exception into the typed error that names the input and the reason."""

from __future__ import annotations

from omnifuse.errors import (
    CorruptInputError,
    InputError,
    InputTooLargeError,
    UnsupportedFormatError,
)
from omnifuse.io.sniff import describe_format


def unrecognised(fmt: str | None, *, expected: str, source: str, modality: str) -> InputError:
    """The error for content no decoder recognised: name what it looks like, if anything.

    A known format of another modality (a PNG given as audio) is unsupported; a known format of
    the expected modality whose decoder still gave up is corrupt.
    """
    if fmt is None:
        return UnsupportedFormatError(
            f"is not a recognised {expected} format", source=source, modality=modality
        )
    return UnsupportedFormatError(
        f"looks like {describe_format(fmt)}, not {expected}", source=source, modality=modality
    )


def decode_failed(exc: BaseException, *, source: str, modality: str) -> InputError:
    """The error for a decoder that raised while reading content it had recognised."""
    if isinstance(exc, InputError):
        return exc
    if isinstance(exc, MemoryError):
        return InputTooLargeError(
            "ran out of memory while decoding", source=source, modality=modality
        )
    detail = _detail(exc)
    return CorruptInputError(f"cannot be decoded: {detail}", source=source, modality=modality)


def _detail(exc: BaseException) -> str:
    """A short reason: FFmpeg's own words without the errno and file name, else the message."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    return str(exc).strip() or type(exc).__name__
