"""Turn a decoder's exception into the typed error that names the input and the reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from omnifuse.errors import (
    CorruptInputError,
    InputError,
    InputTooLargeError,
    UnsupportedFormatError,
)
from omnifuse.io.sniff import describe_format

_WHAT = {"image": "an image", "audio": "audio", "video": "a video", "text": "text"}


def unrecognised(fmt: str | None, *, source: str, modality: str) -> InputError:
    """The error for content that is not of ``modality``: say what it looks like, if anything."""
    if fmt is None:
        return UnsupportedFormatError(
            f"is not in a recognised {modality} format", source=source, modality=modality
        )
    return UnsupportedFormatError(
        f"looks like {describe_format(fmt)}, not {_WHAT.get(modality, modality)}",
        source=source,
        modality=modality,
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


@contextmanager
def decoding(*, source: str, modality: str) -> Iterator[None]:
    """Let typed errors through and turn any other exception raised inside into a typed one."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        raise decode_failed(exc, source=source, modality=modality) from None


def _detail(exc: BaseException) -> str:
    """A short reason: FFmpeg's own words without the errno and file name, else the message."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    return str(exc).strip() or type(exc).__name__
