"""A sweep's data: built once, encoded once into a feature cache, held in memory for training."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from omnifuse.config import CacheSection
from omnifuse.data.cache import CachedFeatureDataset, CachedSample, EncodeReport, FeatureCache
from omnifuse.data.cache.encode import sample_name
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.data.prepare import build_or_reuse, encode_columns, fit_encoders
from omnifuse.errors import ConfigError
from omnifuse.sweep.config import SweepConfig

SPLIT_NAMES = ("train", "val", "test")


class InMemoryFeatures(CachedFeatureDataset):
    """A cached-feature dataset read once into memory, so that many trainings over the same
    samples skip the shard reads. With ``tokens=False`` each column keeps only its pooled vector
    (as a single token): all that fusions which never read tokens need, at a fraction of the
    collation work."""

    def __init__(self, *args: Any, tokens: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokens = tokens
        self.samples = [self._load(i) for i in range(len(self.rows))]

    def _load(self, index: int) -> CachedSample:
        sample = super().__getitem__(index)
        if not self.tokens:
            sample.features = {
                c: (pooled.unsqueeze(0), pooled) for c, (_, pooled) in sample.features.items()
            }
        return sample

    def __getitem__(self, index: int) -> CachedSample:
        return self.samples[index]


@dataclass
class PreparedData:
    """The splits in memory, with token features (``splits``) and pooled only (``pooled``)."""

    manifest: Manifest
    splits: dict[str, InMemoryFeatures]
    pooled: dict[str, InMemoryFeatures]
    classes: list[str]
    dims: dict[str, int]
    encoders: dict[str, dict[str, Any]]
    timings: dict[str, float]
    encode_report: EncodeReport | None = None


def prepare_data(config: SweepConfig) -> PreparedData:
    """Build the dataset if its folder has no manifest, encode it (resumable), load the splits."""
    timings, report = build_and_encode(config)
    return load_prepared(config, timings, report)


def build_and_encode(config: SweepConfig) -> tuple[dict[str, float], EncodeReport]:
    """Build a built-in dataset unless its folder holds it, then fill the feature cache."""
    spec = config.spec
    data_dir, cache_dir = config.folders()
    timings: dict[str, float] = {}
    manifest_path = data_dir / spec.manifest
    if spec.builder is not None and not manifest_path.is_file():
        started = time.perf_counter()
        build_or_reuse(data_dir, spec.builder, config.data_size, config.seed, config.options())
        timings["build_s"] = time.perf_counter() - started
    elif not manifest_path.is_file():
        raise ConfigError(f"manifest {manifest_path} not found")
    started = time.perf_counter()
    encoders = fitted_encoders(config, load_manifest(manifest_path))
    cache = CacheSection(batch_size=config.encode_batch_size, seed=config.seed)
    report = encode_columns(manifest_path, encoders, cache, cache_dir)
    timings["encode_s"] = time.perf_counter() - started
    return timings, report


def test_groups(data: PreparedData, column: str | None) -> list[str] | None:
    """The value of manifest ``column`` for each test sample, in test order (None: no groups);
    a sample without one is in group ``"—"``."""
    if column is None:
        return None
    by_name = {
        sample_name(s, data.manifest, i): s.get(column) for i, s in enumerate(data.manifest.samples)
    }
    if not any(v not in (None, "") for v in by_name.values()):
        raise ConfigError(f"group_by: no sample of {data.manifest.path} has a {column!r} value")
    return [
        "—" if by_name.get(name) in (None, "") else str(by_name[name])
        for name, _, _ in data.splits["test"].rows
    ]


def fitted_encoders(config: SweepConfig, manifest: Manifest) -> dict[str, dict[str, Any]]:
    """The encoder entry of every swept column with the options its encoder fits on the
    training split (statistics, category lists); the same for the encoding and every model."""
    specs = config.encoder_specs()
    return fit_encoders(manifest, {c: specs[c] for c in config.spec.columns})


def load_prepared(
    config: SweepConfig,
    timings: dict[str, float] | None = None,
    report: EncodeReport | None = None,
) -> PreparedData:
    """Load the splits of an encoded dataset into memory (no encoder is built)."""
    spec = config.spec
    data_dir, cache_dir = config.folders()
    timings = dict(timings or {})
    started = time.perf_counter()
    manifest = load_manifest(data_dir / spec.manifest)
    cache = FeatureCache(cache_dir)
    columns = list(spec.columns)
    train = CachedFeatureDataset(cache, manifest, columns, label_column=spec.target, split="train")
    classes = list(train.classes or [])
    splits: dict[str, InMemoryFeatures] = {}
    pooled: dict[str, InMemoryFeatures] = {}
    for split in SPLIT_NAMES:
        for tokens, store in ((True, splits), (False, pooled)):
            store[split] = InMemoryFeatures(
                cache,
                manifest,
                columns,
                label_column=spec.target,
                split=split,
                classes=classes,
                tokens=tokens,
            )
    timings["load_s"] = time.perf_counter() - started
    dims = dict(train.dims)
    encoders = fitted_encoders(config, manifest)
    return PreparedData(manifest, splits, pooled, classes, dims, encoders, timings, report)
