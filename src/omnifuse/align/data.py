"""The pairs an alignment trains on: a manifest, its cached features, groups and splits.

The frozen encoders run once, through the feature cache (:func:`encode_manifest`); everything
here reads the cache into memory per split — pooled vectors always, token features when a head
pools over tokens. A split keeps the rows that have features in every aligned column (a row
whose image failed to decode cannot be a pair), in manifest order.

Groups: rows with equal ``group_by`` values (e.g. the same caption) are interchangeable. They are
the positives of one another in the loss and all relevant in retrieval; without ``group_by``
each row is its own group. ``exclude`` drops rows from the train and val splits only, so
held-out classes can be scored zero-shot on the test split.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omnifuse.align.config import AlignConfig
from omnifuse.data.cache import FeatureCache
from omnifuse.data.cache.encode import sample_name
from omnifuse.data.cache.store import CacheMeta
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.data.prepare import encode_columns, prepare_manifest
from omnifuse.errors import ConfigError, InputError
from omnifuse.nn import stride_pool
from omnifuse.types import pad_tokens


@dataclass
class ColumnFeatures:
    """Cached features of one column for the rows of a split, in row order."""

    pooled: torch.Tensor  # (N, D)
    tokens: list[torch.Tensor] | None = None  # N × (T_i, D)

    def batch(self, index: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        """Pooled (B, D), and padded tokens (B, T, D) with their mask when tokens are held."""
        rows = torch.as_tensor(list(index), dtype=torch.long)
        pooled = self.pooled[rows]
        if self.tokens is None:
            return pooled, None, None
        tokens, mask = pad_tokens([self.tokens[i] for i in index])
        return pooled, tokens, mask


@dataclass
class SplitData:
    """One split: row names, group ids, the manifest rows and each column's features."""

    names: list[str]
    groups: torch.Tensor  # (N,) int64 group codes
    group_keys: list[str]
    samples: list[dict[str, Any]]
    features: dict[str, ColumnFeatures] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)


def cache_dir(config: AlignConfig, out: Path, manifest_path: Path) -> Path:
    """``cache.dir``, else ``<out>/../cache/align-<data folder>``: features are keyed by content
    and column, so the manifests of one data folder can share it."""
    if config.cache.dir:
        return Path(config.cache.dir)
    return out.parent / "cache" / f"align-{manifest_path.parent.name}"


def token_columns(config: AlignConfig, cache: Path) -> dict[str, bool]:
    """Whether each column's token features are stored: as the cache already holds them, else
    as its head needs them (tokens already stored serve a pooled head too)."""
    meta = CacheMeta.read(cache) if (cache / "cache.json").is_file() else CacheMeta()
    return {
        c: meta.columns[c].tokens if c in meta.columns else _stride(config, c) is not None
        for c in config.encoders
    }


def encode_features(config: AlignConfig, manifest_path: Path, cache: Path) -> FeatureCache:
    """Run each frozen encoder over its column once (resumable); the cache it wrote."""
    tokens = token_columns(config, cache)
    for store_tokens in (True, False):
        columns = {c: s for c, s in config.encoders.items() if tokens[c] == store_tokens}
        if columns:
            encode_columns(manifest_path, columns, config.cache, cache, tokens=store_tokens)
    return FeatureCache(cache)


def check_columns(config: AlignConfig, manifest: Manifest) -> None:
    """Every aligned column, and the group and exclude columns, exist in the manifest."""
    modalities = manifest.schema.modalities
    missing = [c for c in config.encoders if c not in modalities]
    if missing:
        raise ConfigError(
            f"encoders: {missing} not modality column(s) of {manifest.path} "
            f"(it has {sorted(modalities)})"
        )
    known = set().union(*(sample.keys() for sample in manifest.samples))
    for column in [config.data.group_by, *config.data.exclude]:
        if column is not None and column not in known:
            raise ConfigError(f"data: column {column!r} is in no row of {manifest.path}")


def load_split(
    config: AlignConfig,
    manifest: Manifest,
    cache: FeatureCache,
    split: str | None,
    *,
    exclude: bool,
) -> SplitData:
    """The rows of ``split`` (None: every row) with features in every column, read to memory."""
    columns = config.columns
    strides = {c: _stride(config, c) for c in columns}
    split_column = manifest.schema.split
    kept: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    for index, sample in enumerate(manifest.samples):
        if split is not None and split_column is not None and sample.get(split_column) != split:
            continue
        if exclude and _excluded(sample, config.data.exclude):
            continue
        keys = _keys(cache, columns, sample)
        if keys is not None:
            kept.append((sample_name(sample, manifest, index), sample, keys))
    group_keys = [_group_key(config.data.group_by, name, s) for name, s, _ in kept]
    codes: dict[str, int] = {}
    groups = torch.tensor([codes.setdefault(g, len(codes)) for g in group_keys], dtype=torch.long)
    features = {
        c: _column_features(cache, c, [keys[c] for _, _, keys in kept], strides[c]) for c in columns
    }
    return SplitData(
        names=[name for name, _, _ in kept],
        groups=groups,
        group_keys=group_keys,
        samples=[s for _, s, _ in kept],
        features=features,
    )


def _excluded(sample: Mapping[str, Any], exclude: Mapping[str, Sequence[Any]]) -> bool:
    return any(sample.get(column) in values for column, values in exclude.items())


def _keys(cache: FeatureCache, columns: Sequence[str], sample: Mapping[str, Any]) -> Any:
    """The content key of each column's value, or None when one is absent or not cached."""
    keys: dict[str, str] = {}
    for column in columns:
        if column not in sample:
            return None
        try:
            key = cache.key_for(column, sample[column])
        except InputError:
            return None
        if not cache.has(column, key):
            return None
        keys[column] = key
    return keys


def _group_key(group_by: str | None, name: str, sample: Mapping[str, Any]) -> str:
    if group_by is None:
        return f"row:{name}"
    value = sample.get(group_by)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _stride(config: AlignConfig, column: str) -> int | None:
    """The token stride of the column's head, or None when the head reads pooled vectors."""
    head = config.head_config(column)
    return head.stride if head.uses_tokens else None


def _column_features(
    cache: FeatureCache, column: str, keys: Sequence[str], stride: int | None
) -> ColumnFeatures:
    """Pooled vectors, and token features averaged over ``stride`` steps as the head takes them
    (done once here rather than in every batch)."""
    pooled = cache.pooled(column, list(keys)).to(torch.float32)
    if stride is None:
        return ColumnFeatures(pooled)
    if not cache.info(column).tokens:
        raise ConfigError(f"the cache holds no token features for {column!r}; re-encode it")
    tokens = []
    for key in keys:
        item = cache.tokens(column, key).unsqueeze(0)
        strided, _ = stride_pool(item, torch.ones(item.shape[:2], dtype=torch.bool), stride)
        tokens.append(strided[0])
    return ColumnFeatures(pooled, tokens)


def load_splits(
    config: AlignConfig, manifest: Manifest, cache: FeatureCache
) -> dict[str, SplitData]:
    """train, val and test (those that have rows); a manifest without splits trains on all."""
    if manifest.schema.split is None:
        return {"train": load_split(config, manifest, cache, None, exclude=True)}
    out: dict[str, SplitData] = {}
    for role, split in config.data.splits.items():
        data = load_split(config, manifest, cache, split, exclude=role != "test")
        if len(data) or role == "train":
            out[role] = data
    if len(out["train"]) < 2:
        raise ConfigError(f"split {config.data.splits['train']!r} has fewer than 2 usable pairs")
    return out


def load_training_data(config: AlignConfig, out: Path) -> tuple[Path, dict[str, SplitData]]:
    """Build or find the manifest, encode it once, and read every split's features."""
    manifest_path = prepare_manifest(config.data, out.parent / "data")
    manifest = load_manifest(manifest_path)
    check_columns(config, manifest)
    cache = encode_features(config, manifest_path, cache_dir(config, out, manifest_path))
    return manifest_path, load_splits(config, manifest, cache)
