"""The config sections every pipeline shares: where the data comes from and how the frozen
encoders' features are cached. Fusion runs, alignment, the projector and the sweep read the same
sections with the same defaults (the training section is :class:`omnifuse.train.TrainConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omnifuse.errors import ConfigError

SPLIT_ROLES = ("train", "val", "test")


@dataclass
class DataSection:
    """``dataset``: a built-in dataset, built on first use into ``dir`` (default
    ``<output>/../data/<dataset>-<size>-s<seed>``) with builder ``options``; ``manifest``: a
    manifest path, or with ``dataset`` the key of one of its manifests. ``splits`` maps the roles
    train (required), val and test to the values of the manifest's split column."""

    dataset: str | None = None
    manifest: str | None = None
    size: int = 100
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    dir: str | None = None
    splits: dict[str, str] = field(default_factory=lambda: {r: r for r in SPLIT_ROLES})

    def __post_init__(self) -> None:
        if not self.dataset and not self.manifest:
            raise ConfigError("data: give 'dataset' (a built-in dataset) or 'manifest' (a path)")
        if self.size < 1:
            raise ConfigError(f"data.size must be at least 1, got {self.size}")
        self.splits = {**{r: r for r in SPLIT_ROLES}, **self.splits}
        unknown = sorted(set(self.splits) - set(SPLIT_ROLES))
        if unknown:
            raise ConfigError(f"data.splits: {unknown}; the roles are {list(SPLIT_ROLES)}")


@dataclass
class CacheSection:
    """The feature cache the frozen encoders fill once (resumable): its folder (default: one
    beside the output, chosen by the pipeline), the encoding batch size, device and storage
    compute dtype, the seed of randomly initialised encoders, and whether token features are kept
    (token-level fusions and attention heads need them)."""

    dir: str | None = None
    batch_size: int = 32
    device: str = "cpu"
    dtype: str = "fp32"
    seed: int = 0
    tokens: bool = True

    def __post_init__(self) -> None:
        if self.dir is not None and not str(self.dir).strip():
            raise ConfigError("cache.dir: an empty path; give a folder or leave the key out")
        if self.batch_size < 1:
            raise ConfigError(f"cache.batch_size must be at least 1, got {self.batch_size}")
