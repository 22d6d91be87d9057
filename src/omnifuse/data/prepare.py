"""The one data path of every pipeline: build a built-in dataset (or reuse the folder that holds
it), find the manifest to train on, and encode its columns into the feature cache.

Fusion runs, alignment, the projector and the sweep all call these functions with the shared
:class:`~omnifuse.config.DataSection` and :class:`~omnifuse.config.CacheSection`, so one dataset
is built and one column encoded the same way, with the same defaults, whoever asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omnifuse.config.schema import encoder_options
from omnifuse.config.sections import CacheSection, DataSection
from omnifuse.data.builders import build as build_dataset
from omnifuse.data.cache import EncodeReport, encode_manifest
from omnifuse.data.manifest import Manifest
from omnifuse.data.schema import DatasetInfo
from omnifuse.errors import ConfigError


def dataset_folder(data: DataSection, root: Path) -> Path:
    """``data.dir``, else ``<root>/<dataset>-<size>-s<seed>``."""
    return Path(data.dir or root / f"{data.dataset}-{data.size}-s{data.seed}")


def build_or_reuse(
    folder: Path, name: str, size: int, seed: int, options: Mapping[str, Any]
) -> DatasetInfo:
    """The dataset in ``folder``: built there unless it already holds ``name`` at this size and
    seed (a folder holding another variant is an error, never overwritten)."""
    if (folder / "dataset.json").is_file():
        info = DatasetInfo.read(folder)
        if (info.name, info.size, info.seed) == (name, size, seed):
            return info
        raise ConfigError(f"data.dir: {folder} holds {info.name} size {info.size} seed {info.seed}")
    return build_dataset(name, folder, seed=seed, size=size, **dict(options))


def prepare_manifest(data: DataSection, root: Path) -> Path:
    """The manifest a run reads: ``data.manifest`` as a path, or a manifest of the built-in
    ``data.dataset`` (its key ``data.manifest``, default its first), built once under ``root``."""
    if not data.dataset:
        return Path(str(data.manifest))
    folder = dataset_folder(data, root)
    info = build_or_reuse(folder, data.dataset, data.size, data.seed, data.options)
    key = data.manifest or next(iter(info.manifests))
    if key not in info.manifests:
        raise ConfigError(f"data.manifest: {data.dataset} has manifests {sorted(info.manifests)}")
    return folder / info.manifests[key]


def fit_encoders(
    manifest: Manifest,
    encoders: Mapping[str, Mapping[str, Any]],
    *,
    split: str | None = "train",
) -> dict[str, dict[str, Any]]:
    """Every column's encoder entry completed by what its encoder learns from the training data.

    A tabular column's entry gets its fields (``numeric``, ``categorical``) from the manifest
    schema's ``tables``; then the encoder's :meth:`~omnifuse.encoders.Encoder.fit_options`
    (normalisation statistics, category lists) read the ``split`` samples (all samples when the
    manifest has no split column). Options already in an entry are kept as given, so a saved
    model's config rebuilds the same encoder and a cache keeps its fingerprint.
    """
    from omnifuse.encoders import encoders as registry
    from omnifuse.encoders import list_encoders

    list_encoders()  # imports the built-in encoders
    samples = manifest.split(split) if split is not None else manifest.samples
    fitted: dict[str, dict[str, Any]] = {}
    for column, spec in encoders.items():
        entry = dict(spec)
        table = manifest.schema.tables.get(column)
        if table is not None:
            for role in ("numeric", "categorical"):
                entry.setdefault(role, list(table.get(role, [])))
        factory = registry.get(str(entry["name"]))
        fit = getattr(factory, "fit_options", None)
        if fit is not None:
            raws = [s[column] for s in samples if column in s]
            learned = fit(raws, encoder_options(entry))
            entry = {**learned, **entry}
        fitted[column] = entry
    return fitted


def encode_columns(
    manifest_path: Path,
    encoders: Mapping[str, Mapping[str, Any]],
    cache: CacheSection,
    cache_dir: Path,
    *,
    tokens: bool | None = None,
) -> EncodeReport:
    """Encode each column with its encoder entry (``{name, options}``) into ``cache_dir``
    (resumable; bad items are skipped and reported). ``tokens`` overrides ``cache.tokens``."""
    return encode_manifest(
        manifest_path,
        {c: str(s["name"]) for c, s in encoders.items()},
        cache_dir,
        encoder_config={c: encoder_options(s) for c, s in encoders.items()},
        batch_size=cache.batch_size,
        device=cache.device,
        dtype=cache.dtype,
        store_tokens=cache.tokens if tokens is None else tokens,
        seed=cache.seed,
    )


def default_cache_dir(output: Path, manifest_path: Path, *, prefix: str = "") -> Path:
    """``<output>/../cache/<prefix><data folder>``: features are keyed by content and column, so
    the manifests of one data folder share one cache; ``prefix`` keeps pipelines that encode a
    column differently apart."""
    return output.parent / "cache" / f"{prefix}{manifest_path.parent.name}"
