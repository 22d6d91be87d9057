"""Crash-safe file primitives: durable atomic replacement and a folder lock.

A write is durable when its bytes and the directory entry naming them have both reached the disk,
hence the fsync of the file before the rename and of the folder after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from omnifuse.errors import OmnifuseError

LOCK_FILE = "LOCK"


class IndexLockedError(OmnifuseError):
    """Another process holds the index folder (a writer excludes everyone else)."""


def fsync_dir(path: Path) -> None:
    """Persist the directory entries of ``path`` (new, renamed or removed files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[BinaryIO], object], *, sync_dir: bool = True) -> None:
    """Write ``path`` through a temporary sibling renamed over it: readers and crashes see the
    old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    write_atomic(path, lambda f: f.write(data), sync_dir=sync_dir)


class FolderLock:
    """An advisory ``flock`` on ``<folder>/LOCK``: exclusive for a writer, shared for readers.

    The kernel drops it when the process dies, so a killed writer never leaves a stale lock.
    """

    def __init__(self, folder: Path, *, shared: bool) -> None:
        import fcntl

        self.path = folder / LOCK_FILE
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            holder = "a writer" if shared else "another reader or writer"
            raise IndexLockedError(f"index {str(folder)!r} is open in {holder}") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
