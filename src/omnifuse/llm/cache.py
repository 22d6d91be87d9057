"""Model files that omnifuse writes once into its cache folder and reuses afterwards.

The cache lives in ``$OMNIFUSE_CACHE`` or ``~/.cache/omnifuse``. A file is materialised under an
exclusive lock (so two processes starting at once do not both write it) into a temporary file in
the same folder, then moved into place (:func:`omnifuse.fileio.replace_atomic`): readers see
either no file or the complete file, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from omnifuse.fileio import replace_atomic

CACHE_ENV = "OMNIFUSE_CACHE"


def cache_dir() -> Path:
    """The omnifuse cache folder (created on demand)."""
    root = os.environ.get(CACHE_ENV)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "omnifuse"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        _lock(handle.fileno())
        try:
            yield
        finally:
            _unlock(handle.fileno())


def _lock(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def materialize(
    target: Path, write: Callable[[Path], object], *, is_complete: Callable[[Path], bool]
) -> Path:
    """Return ``target``, first creating it with ``write(tmp_path)`` unless it is complete.

    ``write`` fills a fresh temporary path in the target's folder; the result is moved into place
    atomically. The check is repeated under the lock, so a process that waited for another one
    reuses its file instead of writing it again.
    """
    if target.is_file() and is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.with_name(target.name + ".lock")):
        if target.is_file() and is_complete(target):
            return target
        replace_atomic(target, write)
    return target
