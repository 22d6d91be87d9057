"""Training and evaluating every strategy of a sweep, in this process or on an engine's workers.

Small fusion models train fastest on one CPU thread each, so ``workers`` processes (spawned, each
loading the cached features itself) train strategies side by side, or the actors of a Ray
cluster do (``engine``; each actor loads the cache from the same path, so the sweep's folder must
be on storage every node sees). Each worker also runs the
test-set evaluations that do not depend on timing (metrics, missing subsets, Shapley values,
ablation, weights) and sends back the result with the trained weights (safetensors bytes). Cost
(latency, peak memory) is measured afterwards in this process, one model at a time, so that no
measurement shares the CPU with a training run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from omnifuse.data.cache import CachedBatch
from omnifuse.engines import Engine, LocalEngine
from omnifuse.eval.cost import measure_cost
from omnifuse.eval.explain import ablation, modality_shapley, modality_weights
from omnifuse.eval.inference import predict, prepare_batches, restrict
from omnifuse.eval.report import StrategyResult
from omnifuse.eval.robustness import missing_modality_scores
from omnifuse.models import FusionModel, ModelConfig, build_model
from omnifuse.models.folder import model_state
from omnifuse.models.fusion_model import reads_tokens
from omnifuse.progress import track
from omnifuse.sweep.config import Strategy, SweepConfig
from omnifuse.sweep.data import PreparedData, load_prepared, test_groups
from omnifuse.train import train


def model_config(strategy: Strategy, data: PreparedData, target: str) -> ModelConfig:
    return ModelConfig(
        task="classification",
        modalities={c: data.dims[c] for c in strategy.columns},
        encoders={c: data.encoders[c] for c in strategy.columns},
        fusion=strategy.fusion,
        fusion_cfg=dict(strategy.fusion_cfg),
        head="classifier",
        head_cfg=dict(strategy.head_cfg),
        classes=list(data.classes),
        modality_dropout=strategy.modality_dropout,
        target=target,
    )


def train_strategy(
    strategy: Strategy, data: PreparedData, config: SweepConfig
) -> tuple[FusionModel, float, float]:
    """Train one strategy from the sweep's seed; returns the model (best validation weights),
    the best validation metric and the training time in seconds."""
    torch.manual_seed(config.seed)
    model = build_model(model_config(strategy, data, config.spec.target))
    splits = data.splits if reads_tokens(model) else data.pooled
    result = train(model, splits["train"], splits["val"], config.train_config())
    return model, result.best_metric, result.seconds


def evaluate_strategy(
    strategy: Strategy,
    model: FusionModel,
    test: Sequence[CachedBatch],
    *,
    shapley: bool,
    val_metric: float | None,
    groups: Sequence[str] | None = None,
) -> StrategyResult:
    """Every test-set evaluation of one trained model except its cost; ``groups`` (one value per
    test sample, in order) adds the accuracy on each group's samples."""
    predictions = predict(model, test)
    metrics = model.task.metrics(predictions.logits, predictions.labels)
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    result = StrategyResult(
        name=strategy.name,
        fusion=strategy.fusion,
        kind=str(getattr(model.fusion, "kind", "feature")),
        modalities=list(strategy.columns),
        metrics=numbers,
        val_metric=val_metric,
        options={
            "fusion_cfg": strategy.fusion_cfg,
            "head_cfg": strategy.head_cfg,
            "modality_dropout": strategy.modality_dropout,
        },
    )
    if groups is not None:
        result.groups = group_accuracy(predictions.logits, predictions.labels, groups)
    if len(strategy.columns) > 1:
        result.subsets = missing_modality_scores(model, test)
        result.ablation = {a.modality: a.delta_accuracy for a in ablation(model, test)}
        result.weights = modality_weights(model, test)
        if shapley:
            result.shapley = modality_shapley(model, test).values
    return result


def group_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, groups: Sequence[str]
) -> dict[str, float]:
    """Accuracy (top class) on the samples of each group; single-label classification only."""
    if labels.ndim != 1 or len(groups) != len(labels):
        return {}
    right = (logits.argmax(dim=-1) == labels).float()
    return {
        group: float(right[[i for i, g in enumerate(groups) if g == group]].mean())
        for group in sorted(set(groups))
    }


@dataclass
class Trained:
    """A trained and evaluated strategy as it travels back from a worker."""

    index: int
    result: StrategyResult
    weights: bytes
    train_seconds: float


def run_strategy(
    index: int,
    strategy: Strategy,
    data: PreparedData,
    config: SweepConfig,
    test: Sequence[CachedBatch],
) -> Trained:
    model, val_metric, seconds = train_strategy(strategy, data, config)
    result = evaluate_strategy(
        strategy,
        model,
        test,
        shapley=config.shapley,
        val_metric=val_metric,
        groups=test_groups(data, config.group_column),
    )
    return Trained(index, result, save_tensors(model_state(model)), seconds)


@dataclass(frozen=True)
class StrategyWorker:
    """A worker's recipe: load the sweep's cached features once, then train and evaluate the
    strategies it is handed, with ``threads`` torch threads."""

    config: SweepConfig
    threads: int

    def __call__(self) -> Callable[[tuple[int, Strategy]], Trained]:
        torch.set_num_threads(self.threads)
        data = load_prepared(self.config)
        test = prepare_batches(data.splits["test"])

        def run(job: tuple[int, Strategy]) -> Trained:
            return run_strategy(job[0], job[1], data, self.config, test)

        return run


def trained_strategies(
    strategies: Sequence[Strategy],
    data: PreparedData,
    config: SweepConfig,
    test: Sequence[CachedBatch],
    engine: Engine | None = None,
) -> Iterator[Trained]:
    """Train and evaluate each strategy here, in ``config.workers`` local processes, or on
    ``engine``; results come in strategy order."""
    in_process = engine.in_process if engine is not None else config.workers <= 1
    if in_process:
        for index, strategy in enumerate(strategies):
            yield run_strategy(index, strategy, data, config, test)
        return
    runner = engine or LocalEngine(config.workers)
    try:
        worker = StrategyWorker(config, config.threads or 1)
        yield from runner.map(worker, list(enumerate(strategies)))
    finally:
        if engine is None:
            runner.close()


def rebuild(strategy: Strategy, data: PreparedData, config: SweepConfig, weights: bytes) -> Any:
    """The trained model of a strategy from its weights."""
    model = build_model(model_config(strategy, data, config.spec.target))
    model.load_state_dict(load_tensors(weights))
    return model.eval()


def train_and_evaluate(
    strategies: Sequence[Strategy],
    data: PreparedData,
    config: SweepConfig,
    *,
    on_result: Callable[[StrategyResult], None] | None = None,
    engine: Engine | None = None,
) -> tuple[list[StrategyResult], dict[str, FusionModel], dict[str, float]]:
    """Results (in strategy order, cost included), the trained models, and timings."""
    test = prepare_batches(data.splits["test"])
    started = time.perf_counter()
    done: dict[int, Trained] = {}
    runs = trained_strategies(strategies, data, config, test, engine)
    for trained in track(runs, "sweep", total=len(strategies)) if config.progress else runs:
        done[trained.index] = trained
    timings = {"train_eval_s": time.perf_counter() - started}
    started = time.perf_counter()
    results, models = [], {}
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        for index, strategy in enumerate(strategies):
            trained = done[index]
            model = rebuild(strategy, data, config, trained.weights)
            batch = restrict(test[0], model.modalities)
            trained.result.cost = measure_cost(model, batch, train_seconds=trained.train_seconds)
            results.append(trained.result)
            models[strategy.name] = model
            if on_result is not None:
                on_result(trained.result)
    finally:
        torch.set_num_threads(threads)
    timings["cost_s"] = time.perf_counter() - started
    return results, models, timings
