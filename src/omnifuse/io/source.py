"""Encoded inputs (a file path or a byte buffer): existence and size checks, naming, sniffing.

A loader turns whatever the caller passed into an :class:`EncodedSource` first, so a missing file,
an empty file or an oversized file is refused with the right typed error before any decoder runs.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeGuard

from omnifuse.errors import EmptyInputError, InputNotFoundError, InputTooLargeError
from omnifuse.io.limits import DecodeLimits
from omnifuse.io.sniff import HEAD_BYTES, sniff_format

BytesLike = bytes | bytearray | memoryview
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class EncodedSource:
    """A checked input: one of ``path`` and ``data`` is set; ``label`` names it in errors."""

    label: str
    size: int
    path: Path | None = None
    data: bytes | None = None

    def open(self) -> BinaryIO:
        """A binary file object positioned at the start; the caller closes it."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")

    def read(self) -> bytes:
        """The whole content (already bounded by ``max_bytes``)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def sniff(self) -> str | None:
        """The format its magic bytes announce, or None."""
        if self.data is not None:
            return sniff_format(self.data[:HEAD_BYTES])
        assert self.path is not None
        return sniff_format(self.path)


def is_encoded(src: object) -> TypeGuard[PathLike | BytesLike]:
    """Whether ``src`` is a path or a byte buffer (as opposed to decoded pixels or samples)."""
    return isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview))


def describe_bytes(data: BytesLike) -> str:
    """The label of an unnamed buffer, e.g. ``<bytes len=123>``."""
    return f"<bytes len={len(memoryview(data))}>"


def check_encoded(
    src: PathLike | BytesLike, *, modality: str, limits: DecodeLimits, name: str | None
) -> EncodedSource:
    """Check that ``src`` exists, is not empty and is within ``max_bytes``, without reading it."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        source = EncodedSource(label=name or describe_bytes(data), size=len(data), data=data)
    else:
        path = Path(src)
        label = name or str(path)
        source = EncodedSource(label=label, size=_file_size(path, label, modality), path=path)
    if source.size == 0:
        raise EmptyInputError("is empty (0 bytes)", source=source.label, modality=modality)
    if source.size > limits.max_bytes:
        raise InputTooLargeError(
            f"is {source.size} bytes, over the limit of {limits.max_bytes}",
            source=source.label,
            modality=modality,
        )
    return source


def _file_size(path: Path, label: str, modality: str) -> int:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputNotFoundError("no such file", source=label, modality=modality) from None
    except OSError as exc:
        raise InputNotFoundError(
            f"cannot be read: {exc.strerror or exc}", source=label, modality=modality
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise InputNotFoundError("is not a regular file", source=label, modality=modality)
    if not os.access(path, os.R_OK):
        raise InputNotFoundError(
            "cannot be read: permission denied", source=label, modality=modality
        )
    return info.st_size
