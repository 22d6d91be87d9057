"""Training runs described by one YAML file: data, encoders, features, model, training, output.

::

    data:
      dataset: av-digits          # a built-in dataset, built on first use, or instead
      # manifest: my/data.jsonl   # a manifest path (with dataset: the key of one of its manifests)
      size: 300                   # built-in datasets: size, seed, builder options, folder
      seed: 0
      options: {}
      dir: runs/data/av-digits    # default: <output>/../data/<dataset>-<size>-s<seed>
      target: label               # the label column
      splits: {train: train, val: val, test: test}
      matching: {swap: [image], distinct: caption}   # task matching: derive caption-image pairs
    encoders:                     # column → encoder registry name and options
      image: {name: effnet-lite0, image_size: 64}
      audio: {name: whisper-tiny-en}
    cache:                        # present: train on cached features (encoded first, resumable)
      dir: runs/cache/av-digits   # absent: train end to end, encoders inside the model
      batch_size: 32
      device: cpu
      dtype: fp32
      seed: 0                     # seeds randomly initialised encoders
      tokens: true                # store token features (token-level fusions need them)
    augment: {image_crop: 0.8, audio_snr_db: [5, 30], audio_shift_s: 0.1}  # end to end only
    model: {task: classification, fusion: concat, fusion_cfg: {dim: 128}, head: classifier}
    train: {epochs: 30, batch_size: 32, lr: 0.001, patience: 5}   # TrainConfig
    output: runs/av-digits-concat # the model folder

Relative paths are taken from the working directory. Every key is checked up front: a misspelt
or mistyped key is a :class:`~omnifuse.errors.ConfigError` naming it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omnifuse.data.builders import available as available_datasets
from omnifuse.data.builders import datasets as dataset_builders
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.data.schema import DatasetInfo
from omnifuse.errors import ConfigError
from omnifuse.models.config import ModelConfig
from omnifuse.models.encoders import build_encoder, encoder_options
from omnifuse.models.folder import save_model
from omnifuse.models.fusion_model import FusionModel, build_model
from omnifuse.models.inference import evaluate
from omnifuse.models.raw import RawDataset
from omnifuse.tasks import tasks
from omnifuse.train.augment import AugmentConfig, Augmenter
from omnifuse.train.config import TrainConfig, TrainResult
from omnifuse.train.trainer import train

TOP_KEYS = ("data", "encoders", "cache", "augment", "model", "train", "output")
DATA_KEYS = (
    "dataset",
    "manifest",
    "size",
    "seed",
    "options",
    "dir",
    "target",
    "splits",
    "matching",
)
CACHE_KEYS = ("dir", "batch_size", "device", "dtype", "seed", "tokens")
MODEL_KEYS = (
    "task",
    "fusion",
    "fusion_cfg",
    "head",
    "head_cfg",
    "task_cfg",
    "modality_dropout",
    "classes",
)


@dataclass
class RunConfig:
    """A parsed, checked run file (see the module docstring)."""

    data: dict[str, Any]
    encoders: dict[str, dict[str, Any]]
    model: dict[str, Any]
    train: TrainConfig
    output: Path
    cache: dict[str, Any] | None = None
    augment: AugmentConfig | None = None

    @property
    def end_to_end(self) -> bool:
        return self.cache is None

    @classmethod
    def from_dict(cls, raw: Any) -> RunConfig:
        data = _mapping(raw, "the run config")
        _known(data, TOP_KEYS, "")
        for key in ("data", "encoders", "model", "output"):
            if key not in data:
                raise ConfigError(f"missing key {key!r}")
        source = _mapping(data["data"], "data")
        _known(source, DATA_KEYS, "data.")
        if not source.get("dataset") and not source.get("manifest"):
            raise ConfigError("data: give 'dataset' (a built-in dataset) or 'manifest' (a path)")
        _typed(source, "data.", {"size": int, "seed": int, "target": str, "dir": str})
        _typed(source, "data.", {"dataset": str, "manifest": str})
        _typed(source, "data.", {"options": dict, "splits": dict, "matching": dict})
        encoders = _mapping(data["encoders"], "encoders")
        if not encoders:
            raise ConfigError("encoders: map at least one column to an encoder")
        for column, spec in encoders.items():
            if isinstance(spec, str):
                encoders[column] = {"name": spec}
            elif not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise ConfigError(f"encoders.{column}: expected a name or a mapping with 'name'")
        cache = data.get("cache")
        if cache is not None:
            cache = _mapping(cache, "cache")
            _known(cache, CACHE_KEYS, "cache.")
            if not cache.get("dir"):
                raise ConfigError("cache.dir: the feature cache folder is required")
            _typed(cache, "cache.", {"batch_size": int, "seed": int, "tokens": bool})
            _typed(cache, "cache.", {"device": str, "dtype": str, "dir": str})
        model = _mapping(data["model"], "model")
        _known(model, MODEL_KEYS, "model.")
        augment = data.get("augment")
        if augment is not None and cache is not None:
            raise ConfigError("augment: augmentation needs end-to-end training (remove 'cache')")
        return cls(
            data=source,
            encoders={c: dict(s) for c, s in encoders.items()},
            model=model,
            train=TrainConfig.from_dict(dict(data.get("train") or {})),
            output=Path(str(data["output"])),
            cache=cache,
            augment=AugmentConfig.from_dict(augment) if augment is not None else None,
        )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def _typed(data: Mapping[str, Any], prefix: str, types: Mapping[str, type]) -> None:
    """Keys that are present (and not null) hold values of their type (bools are not ints)."""
    for key, kind in types.items():
        value = data.get(key)
        if value is None:
            continue
        wrong_bool = isinstance(value, bool) and kind is not bool
        if wrong_bool or not isinstance(value, kind):
            raise ConfigError(f"{prefix}{key}: expected {kind.__name__}, got {value!r}")


def _known(data: Mapping[str, Any], keys: Sequence[str], prefix: str) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[prefix + k for k in unknown]}; known: {[prefix + k for k in keys]}"
        )


def read_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Parse a YAML run file, apply ``key.path=value`` overrides (YAML values), check it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    raw = apply_overrides(_mapping(raw, str(path)), overrides)
    return RunConfig.from_dict(raw)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``train.epochs=3`` style overrides; values are parsed as YAML (numbers, lists, null)."""
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.path=value")
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a mapping")
            node = child
        node[parts[-1]] = yaml.safe_load(value)
    return out


@dataclass
class RunOutcome:
    """What a run produced: the trained model, its folder, the training result and metrics."""

    model: FusionModel
    folder: Path
    result: TrainResult
    metrics: dict[str, Any] = field(default_factory=dict)


def run(config: RunConfig) -> RunOutcome:
    """Prepare data (and features), build, train, evaluate and save the model."""
    started = time.perf_counter()
    manifest_path = prepare_data(config)
    manifest = load_manifest(manifest_path)
    _check_columns(config, manifest)
    task_name = str(config.model.get("task", "classification"))
    target = default_target(config)
    classes = config.model.get("classes") or infer_classes(task_name, manifest, target)
    splits = {"train": "train", "val": "val", "test": "test", **(config.data.get("splits") or {})}
    model_fields = {k: v for k, v in config.model.items() if k != "classes"}
    if config.cache is None:
        model, sets = _end_to_end(config, manifest, model_fields, classes, target, splits)
    else:
        model, sets = _cached(
            config, manifest_path, manifest, model_fields, classes, target, splits
        )
    train_config = config.train
    if train_config.log_dir is None:
        train_config = TrainConfig(**{**train_config.to_dict(), "log_dir": str(config.output)})
    result = train(model, sets["train"], sets.get("val"), train_config)
    metrics: dict[str, Any] = {
        "train": {
            "best_epoch": result.best_epoch,
            "best_metric": result.best_metric,
            "metric": result.metric,
            "epochs": len(result.history),
            "stopped_early": result.stopped_early,
            "seconds": round(result.seconds, 2),
        },
        "data": {"manifest": str(manifest_path), **{k: len(v) for k, v in sets.items()}},
    }
    for split in ("val", "test"):
        if split in sets:
            metrics[split] = evaluate(model, sets[split], batch_size=train_config.eval_batch_size)
    metrics["train"]["total_seconds"] = round(time.perf_counter() - started, 2)
    save_model(model, config.output, metrics)
    return RunOutcome(model, config.output, result, metrics)


def prepare_data(config: RunConfig) -> Path:
    """The manifest to train on: a path, or a built-in dataset built (once) into its folder;
    for the matching task, the derived caption–image pairs."""
    data = config.data
    manifest = data.get("manifest")
    name = data.get("dataset")
    if name:
        size, seed = int(data.get("size", 100)), int(data.get("seed", 0))
        folder = Path(data.get("dir") or config.output.parent / "data" / f"{name}-{size}-s{seed}")
        info = _built(folder, str(name), size, seed, dict(data.get("options") or {}))
        key = str(manifest) if manifest else next(iter(info.manifests))
        if key not in info.manifests:
            raise ConfigError(f"data.manifest: {name} has manifests {sorted(info.manifests)}")
        path = folder / info.manifests[key]
    else:
        path = Path(str(manifest))
    if config.model.get("task") == "matching" and data.get("matching") is not None:
        from omnifuse.tasks.matching import write_matching_manifest

        options = _mapping(data["matching"], "data.matching")
        path = write_matching_manifest(
            path,
            path.with_name(path.stem + ".matching.jsonl"),
            target=str(data.get("target", "match")),
            **options,
        )
    return path


def default_target(config: RunConfig) -> str:
    """The label column: ``data.target``, else ``match`` for matching and ``label`` otherwise."""
    fallback = "match" if config.model.get("task") == "matching" else "label"
    return str(config.data.get("target") or fallback)


def _built(folder: Path, name: str, size: int, seed: int, options: dict[str, Any]) -> DatasetInfo:
    if (folder / "dataset.json").is_file():
        info = DatasetInfo.read(folder)
        if (info.name, info.size, info.seed) == (name, size, seed):
            return info
        raise ConfigError(f"data.dir: {folder} holds {info.name} size {info.size} seed {info.seed}")
    folder.mkdir(parents=True, exist_ok=True)
    available_datasets()  # imports the built-in builders
    try:
        return dataset_builders.get(name)(folder, seed=seed, size=size, **options)
    except TypeError as err:
        raise ConfigError(f"data.options: {err}") from None


def _check_columns(config: RunConfig, manifest: Manifest) -> None:
    unknown = [c for c in config.encoders if c not in manifest.schema.modalities]
    if unknown:
        raise ConfigError(
            f"encoders: {unknown} not modality column(s) of {manifest.path} "
            f"(it has {sorted(manifest.schema.modalities)})"
        )


def infer_classes(task: str, manifest: Manifest, target: str) -> list[str]:
    """Class names from every labelled sample of the manifest, as the task reads labels."""
    factory = tasks.get(task)
    values = [s.get(target) for s in manifest.samples if s.get(target) not in (None, "")]
    if not values:
        raise ConfigError(f"data.target: no sample has a {target!r} label")
    return list(factory.infer_classes(values))  # type: ignore[attr-defined]


def _roles(manifest: Manifest, splits: dict[str, str]) -> dict[str, str | None]:
    """Dataset role → split value; a manifest without a split column trains on everything."""
    if manifest.schema.split is None:
        return {"train": None}
    return dict(splits)


def _cached(
    config: RunConfig,
    manifest_path: Path,
    manifest: Manifest,
    model_fields: dict[str, Any],
    classes: list[str],
    target: str,
    splits: dict[str, str],
) -> tuple[FusionModel, dict[str, Any]]:
    from omnifuse.data.cache import CachedFeatureDataset, FeatureCache, encode_manifest

    cache = dict(config.cache or {})
    cache_dir = Path(str(cache["dir"]))
    seed = int(cache.get("seed", 0))
    encode_manifest(
        manifest_path,
        {c: s["name"] for c, s in config.encoders.items()},
        cache_dir,
        encoder_config={c: encoder_options(s) for c, s in config.encoders.items()},
        batch_size=int(cache.get("batch_size", 32)),
        device=str(cache.get("device", "cpu")),
        dtype=str(cache.get("dtype", "fp32")),
        store_tokens=bool(cache.get("tokens", True)),
        seed=seed,
    )
    features = FeatureCache(cache_dir)
    columns = list(config.encoders)
    model_config = ModelConfig.from_dict(
        {
            **model_fields,
            "modalities": {c: features.info(c).dim for c in columns},
            "encoders": {c: {**s, "seed": seed} for c, s in config.encoders.items()},
            "classes": classes,
            "target": target,
            "end_to_end": False,
        }
    )
    model = build_model(model_config)
    sets = {}
    for role, split in _roles(manifest, splits).items():
        data = CachedFeatureDataset(features, manifest, columns, split=split)
        if len(data) or role == "train":
            sets[role] = data
    return model, sets


def _end_to_end(
    config: RunConfig,
    manifest: Manifest,
    model_fields: dict[str, Any],
    classes: list[str],
    target: str,
    splits: dict[str, str],
) -> tuple[FusionModel, dict[str, Any]]:
    seed = config.train.seed
    specs = {c: {"seed": seed, **s} for c, s in config.encoders.items()}
    built = {c: build_encoder(s) for c, s in specs.items()}
    model_config = ModelConfig.from_dict(
        {
            **model_fields,
            "modalities": {c: e.dim for c, e in built.items()},
            "encoders": specs,
            "classes": classes,
            "target": target,
            "end_to_end": True,
        }
    )
    model = build_model(model_config, encoders=built)
    augment = Augmenter(config.augment) if config.augment is not None else None
    sets = {}
    for role, split in _roles(manifest, splits).items():
        data = RawDataset.from_manifest(
            manifest,
            model,
            split=split,
            augment=augment if role == "train" else None,
            seed=seed,
        )
        if len(data) or role == "train":
            sets[role] = data
    return model, sets
