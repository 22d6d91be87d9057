"""Keeping a busy server's resident memory level.

Requests allocate and free many short-lived buffers of a few hundred kilobytes (decoded images,
feature tensors, JSON). glibc serves blocks that large from ``mmap`` at first, but raises its
mmap threshold each time such a block is freed, so later ones come from the heap, where freed
memory stays with the process: the resident size crept up 10 % over 60 s of bench/load.py with
Python's own allocations flat. Fixing the mmap threshold (and the trim threshold) at 128 KiB —
what ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072``
does — keeps large blocks out of the heap and returns freed heap tops; with it the resident size
levels off. On a C library without ``mallopt`` (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 128 * 1024


def level_heap(threshold: int = THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap and trim thresholds at ``threshold`` bytes; False where impossible."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        log.debug("no mallopt in this C library; heap thresholds left as they are")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, threshold))
