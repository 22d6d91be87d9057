"""Small helpers shared by the built-in dataset builders: seeded generators, split sizes, PNG files.

Every random choice in a builder comes from a generator derived from ``(seed, *keys)``, so one
sample's randomness never depends on how many draws another sample made, and the same seed gives
the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from omnifuse.errors import MissingDependencyError

SPLIT_FRACTIONS: dict[str, float] = {"train": 0.70, "val": 0.15, "test": 0.15}


def child_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator for one purpose (``keys``) under ``seed``, independent of every other purpose."""
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])


def split_counts(n: int, fractions: Mapping[str, float] = SPLIT_FRACTIONS) -> dict[str, int]:
    """Split ``n`` items by ``fractions``; rounding leftovers go to the first split.

    Every split with a positive fraction gets at least one item when ``n`` allows it, so a tiny
    dataset still has a test set.
    """
    names = list(fractions)
    total = sum(fractions.values())
    counts = {name: int(np.floor(n * fractions[name] / total)) for name in names}
    for name in reversed(names):
        if counts[name] == 0 and fractions[name] > 0 and sum(counts.values()) < n:
            counts[name] = 1
    while sum(counts.values()) > n:
        largest = max(names, key=lambda name: counts[name])
        counts[largest] -= 1
    counts[names[0]] += n - sum(counts.values())
    return counts


def write_gray_png(path: Path, pixels: np.ndarray) -> None:
    """Write a 2-D uint8 array as an 8-bit grayscale PNG; no metadata, so the bytes reproduce."""
    array = np.asarray(pixels)
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 array, got {array.dtype} {array.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", optimize=False)


def require_files(paths: Iterable[Path], what: str, *, apt: str) -> None:
    """Raise :class:`MissingDependencyError` naming the Debian package when a file is absent."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise MissingDependencyError(f"{what} ({', '.join(missing)})", apt=apt)
