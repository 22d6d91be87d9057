"""The index folder's lock: one writer, or any number of readers.

Durable atomic file replacement, which the index uses for every file it commits, is
:func:`omnifuse.fileio.write_atomic` with ``durable=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

from omnifuse.errors import OmnifuseError

LOCK_FILE = "LOCK"


class IndexLockedError(OmnifuseError):
    """Another process holds the index folder (a writer excludes everyone else)."""


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
