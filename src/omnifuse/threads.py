"""Torch's intra-op thread count as a scoped setting.

Torch keeps one process-wide count, and libraries with their own OpenMP pool (CTranslate2, under
faster-whisper) change it as a side effect of loading or running a model. Work that sets a count
for itself, or calls such a library, restores the caller's count afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
