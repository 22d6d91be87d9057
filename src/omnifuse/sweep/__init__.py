"""The strategy sweep: every fusion trained with the same budget and seed, then compared.

:func:`run_sweep` builds a built-in dataset (when its folder has no manifest), encodes it once
into a feature cache (resumable: a rerun reuses every stored feature), trains each strategy on
the cached features with one :class:`~omnifuse.train.TrainConfig`, and evaluates it on the test
split: accuracy, macro-F1, precision/recall, calibration error, accuracy with every subset of
modalities missing, exact Shapley values of the modalities, ablation, fusion weights, and cost.
Optional noise curves perturb the raw test inputs and re-encode them once, for all strategies.

Strategies are the requested fusions over all columns, single-modality baselines (the same
recipe on one column), and for the modality-dropout study each named fusion again with modality
dropout. Results go to ``leaderboard.md``, ``leaderboard.csv``, ``results.json``, ``sweep.json``
(settings, timings, summary, studies) and PNG plots in the output folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from omnifuse.data.cache import CachedBatch
from omnifuse.data.cache.encode import sample_name
from omnifuse.encoders import create as create_encoder
from omnifuse.engines import Engine
from omnifuse.eval.inference import prepare_batches
from omnifuse.eval.noise import noises_for
from omnifuse.eval.plots import write_plots
from omnifuse.eval.report import StrategyResult, json_safe, write_leaderboard
from omnifuse.eval.robustness import NoiseProbe
from omnifuse.fileio import write_json_atomic
from omnifuse.models import FusionModel
from omnifuse.models.encoders import encoder_options
from omnifuse.sweep.config import (
    DATASETS,
    DataSpec,
    Strategy,
    SweepConfig,
    read_sweep_config,
    resolve_fusions,
    strategies_for,
)
from omnifuse.sweep.data import PreparedData, prepare_data
from omnifuse.sweep.run import train_and_evaluate
from omnifuse.sweep.studies import DropoutStudy, dropout_studies, summarize


@dataclass
class SweepResult:
    results: list[StrategyResult]
    paths: dict[str, Path]
    timings: dict[str, float]
    studies: list[DropoutStudy]
    summary: dict[str, Any]


def noise_probes(
    config: SweepConfig, data: PreparedData, test: Sequence[CachedBatch]
) -> tuple[list[NoiseProbe], list[CachedBatch]]:
    """Perturbed features of each column of the first ``noise_samples`` test samples, for every
    noise of the column's kind."""
    subset: list[CachedBatch] = []
    for batch in test:
        if sum(len(b.names) for b in subset) >= config.noise_samples:
            break
        subset.append(batch)
    manifest = data.manifest
    kinds = manifest.schema.modalities
    probes = []
    for column in config.spec.columns:
        raws = {
            sample_name(s, manifest, i): s[column]
            for i, s in enumerate(manifest.samples)
            if column in s
        }
        spec = data.encoders[column]
        torch.manual_seed(config.seed)
        encoder = create_encoder(spec["name"], **encoder_options(spec))
        for noise in noises_for(kinds[column]):
            probes.append(NoiseProbe.build(subset, raws, column, encoder, noise, seed=config.seed))
    return probes, subset


def add_noise_curves(
    results: Sequence[StrategyResult],
    models: dict[str, FusionModel],
    config: SweepConfig,
    data: PreparedData,
) -> None:
    probes, subset = noise_probes(config, data, prepare_batches(data.splits["test"], batch_size=64))
    for result in results:
        result.noise = [probe.curve(models[result.name], subset) for probe in probes]


def run_sweep(
    config: SweepConfig,
    *,
    on_result: Callable[[StrategyResult], None] | None = None,
    engine: Engine | None = None,
) -> SweepResult:
    """Prepare the data, train and evaluate every strategy, write the reports. ``engine`` runs
    the strategies (default: this process, or ``config.workers`` local processes)."""
    started = time.perf_counter()
    data = prepare_data(config)
    timings = dict(data.timings)
    strategies = strategies_for(config)
    results, models, loop_timings = train_and_evaluate(
        strategies, data, config, on_result=on_result, engine=engine
    )
    timings.update(loop_timings)
    if config.noise:
        noise_started = time.perf_counter()
        add_noise_curves(results, models, config, data)
        timings["noise_s"] = time.perf_counter() - noise_started
    studies = dropout_studies(results, config)
    summary = summarize(results)
    paths = write_leaderboard(results, config.out, title=f"{config.data} sweep")
    if config.plots:
        paths.update(write_plots(results, config.out))
    timings["total_s"] = time.perf_counter() - started
    record = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "builder_options": config.options(),
        "encoders": data.encoders,
        "splits": {k: len(v) for k, v in data.splits.items()},
        "torch_threads": torch.get_num_threads(),
        "timings": timings,
        "summary": summary,
        "dropout_studies": [s.to_dict() for s in studies],
    }
    paths["sweep"] = config.out / "sweep.json"
    write_json_atomic(paths["sweep"], json_safe(record))
    return SweepResult(results, paths, timings, studies, summary)


__all__ = [
    "DATASETS",
    "DataSpec",
    "DropoutStudy",
    "Strategy",
    "SweepConfig",
    "SweepResult",
    "read_sweep_config",
    "resolve_fusions",
    "run_sweep",
    "strategies_for",
]
