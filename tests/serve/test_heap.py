"""The server fixes glibc's mmap and trim thresholds so that its resident size levels off under
load (figures in docs/BENCHMARKS.md, "Load test")."""

from __future__ import annotations

from omnifuse.serve.memory import level_heap


def test_the_heap_thresholds_are_set_on_glibc() -> None:
    assert level_heap() is True  # Debian and Ubuntu use glibc
