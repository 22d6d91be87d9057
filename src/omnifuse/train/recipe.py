"""Running a fusion training run (:class:`~omnifuse.train.run_config.RunConfig`): prepare the
data through the one data path, build the model, train it through the one loop, evaluate and
save the model folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omnifuse.config import CacheSection
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.data.prepare import (
    default_cache_dir,
    encode_columns,
    fit_encoders,
    prepare_manifest,
)
from omnifuse.errors import ConfigError
from omnifuse.models.config import ModelConfig
from omnifuse.models.encoders import build_encoder
from omnifuse.models.folder import save_model
from omnifuse.models.fusion_model import FusionModel, build_model
from omnifuse.models.inference import evaluate
from omnifuse.models.raw import RawDataset
from omnifuse.tasks import tasks
from omnifuse.train import distributed
from omnifuse.train.augment import Augmenter
from omnifuse.train.config import TrainConfig, TrainResult
from omnifuse.train.distill import Distillation
from omnifuse.train.run_config import RunConfig, read_run_config
from omnifuse.train.tracking import log_model_folder
from omnifuse.train.trainer import train

__all__ = ["RunConfig", "RunOutcome", "prepare_data", "read_run_config", "run"]


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
    distributed.init_from_env()
    with distributed.main_first():  # rank 0 builds the data and fills the cache
        manifest_path = prepare_data(config)
        manifest = load_manifest(manifest_path)
        _check_columns(config, manifest)
        train_split = config.data.splits.get("train", "train")
        config = replace(
            config, encoders=fit_encoders(manifest, config.encoders, split=train_split)
        )
        classes = config.model.classes or infer_classes(config.model.task, manifest, config.target)
        if config.cache is None:
            model, sets = _end_to_end(config, manifest, classes)
        else:
            model, sets = _cached(config, manifest_path, manifest, classes)
    train_config = config.train
    if train_config.log_dir is None:
        train_config = TrainConfig(**{**train_config.to_dict(), "log_dir": str(config.output)})
    teacher = Distillation.load(config.distill) if config.distill is not None else None
    result = train(model, sets["train"], sets.get("val"), train_config, distillation=teacher)
    metrics: dict[str, Any] = {
        "train": {
            "best_epoch": result.best_epoch,
            "best_metric": result.best_metric,
            "metric": result.metric,
            "epochs": len(result.history),
            "stopped_early": result.stopped_early,
            "seconds": round(result.seconds, 2),
        },
        "data": {
            "manifest": str(Path(manifest_path).resolve()),
            **{k: len(v) for k, v in sets.items()},
        },
    }
    for split in ("val", "test"):
        if split in sets:
            metrics[split] = evaluate(model, sets[split], batch_size=train_config.eval_batch_size)
    metrics["train"]["total_seconds"] = round(time.perf_counter() - started, 2)
    if distributed.is_main():
        save_model(model, config.output, metrics)
        _track_model(train_config, result, config.output, metrics)
    return RunOutcome(model, config.output, result, metrics)


def _track_model(
    train_config: TrainConfig, result: TrainResult, folder: Path, metrics: dict[str, Any]
) -> None:
    """The saved folder as the MLflow run's ``model/`` artifacts, with the test split's metrics
    (``test_accuracy``, …) at the last epoch (validation is already tracked per epoch)."""
    settings = train_config.mlflow_settings
    run_id = result.extra.get("mlflow_run_id")
    if settings is None or not run_id:
        return
    last = int(result.history[-1]["epoch"]) if result.history else 0
    final = {"test": metrics["test"]} if "test" in metrics else {}
    log_model_folder(settings, run_id, folder, final, step=last)


def prepare_data(config: RunConfig) -> Path:
    """The manifest to train on (built-in datasets are built once, beside the output); for the
    matching task, the derived caption–image pairs."""
    path = prepare_manifest(config.data, config.output.parent / "data")
    if config.model.task == "matching" and config.data.matching is not None:
        from omnifuse.tasks.matching import write_matching_manifest

        path = write_matching_manifest(
            path,
            path.with_name(path.stem + ".matching.jsonl"),
            target=config.data.target or "match",
            **config.data.matching,
        )
    return path


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


def _model_config(
    config: RunConfig,
    modalities: dict[str, int],
    encoders: dict[str, dict[str, Any]],
    classes: list[str],
    *,
    end_to_end: bool,
) -> ModelConfig:
    """The run's model section completed by what the data and the encoders say."""
    return ModelConfig.from_dict(
        {
            **config.model.fields(),
            "modalities": modalities,
            "encoders": encoders,
            "classes": classes,
            "target": config.target,
            "end_to_end": end_to_end,
        }
    )


def _split_sets(
    config: RunConfig, manifest: Manifest, make: Callable[[str, str | None], Any]
) -> dict[str, Any]:
    """Dataset role → ``make(role, split value)``; a manifest without a split column trains on
    everything, and an empty val or test split is left out."""
    if manifest.schema.split is None:
        return {"train": make("train", None)}
    sets = {}
    for role, split in config.data.splits.items():
        data = make(role, split)
        if len(data) or role == "train":
            sets[role] = data
    return sets


def _cached(
    config: RunConfig, manifest_path: Path, manifest: Manifest, classes: list[str]
) -> tuple[FusionModel, dict[str, Any]]:
    from omnifuse.data.cache import CachedFeatureDataset, FeatureCache

    cache = config.cache or CacheSection()
    cache_dir = Path(cache.dir) if cache.dir else default_cache_dir(config.output, manifest_path)
    encode_columns(manifest_path, config.encoders, cache, cache_dir)
    features = FeatureCache(cache_dir)
    columns = list(config.encoders)
    modalities = {c: features.info(c).dim for c in columns}
    encoders = {c: {**s, "seed": cache.seed} for c, s in config.encoders.items()}
    model = build_model(_model_config(config, modalities, encoders, classes, end_to_end=False))
    sets = _split_sets(
        config,
        manifest,
        lambda _, split: CachedFeatureDataset(features, manifest, columns, split=split),
    )
    return model, sets


def _end_to_end(
    config: RunConfig, manifest: Manifest, classes: list[str]
) -> tuple[FusionModel, dict[str, Any]]:
    seed = config.train.seed
    specs = {c: {"seed": seed, **s} for c, s in config.encoders.items()}
    built = {c: build_encoder(s) for c, s in specs.items()}
    modalities = {c: e.dim for c, e in built.items()}
    model_config = _model_config(config, modalities, specs, classes, end_to_end=True)
    model = build_model(model_config, encoders=built)
    augment = Augmenter(config.augment) if config.augment is not None else None
    sets = _split_sets(
        config,
        manifest,
        lambda role, split: RawDataset.from_manifest(
            manifest,
            model,
            split=split,
            augment=augment if role == "train" else None,
            seed=seed,
        ),
    )
    return model, sets
