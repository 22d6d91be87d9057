"""One tuning trial: train the drawn strategy on the cached features, stop it when its
validation curve is hopeless, then score it (validation metric, test metrics, latency for one
sample, parameters) and keep it as a model folder under ``OUT/trials/``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from omnifuse.eval.cost import latency_ms, parameter_counts, slice_batch
from omnifuse.eval.inference import predict, prepare_batches, restrict
from omnifuse.models import build_model
from omnifuse.models.folder import save_model
from omnifuse.models.fusion_model import reads_tokens
from omnifuse.sweep.data import PreparedData
from omnifuse.sweep.run import model_config
from omnifuse.train import train
from omnifuse.train.trainer import resolve_metric
from omnifuse.tune.config import TuneConfig
from omnifuse.tune.space import TrialPlan

CURVE_ATTR = "curve"


def trial_folder(out: Path, number: int) -> Path:
    return out / "trials" / f"{number:04d}"


def hopeless(curve: list[float], finished: list[list[float]], config: TuneConfig) -> bool:
    """Whether a trial's best score so far is below the median of the completed trials' best
    scores at the same epoch (higher is better), past the warm-up and with enough trials."""
    epoch = len(curve)
    if not config.prune_after or epoch < config.prune_warmup:
        return False
    peers = [max(c[:epoch]) for c in finished if len(c) >= epoch]
    if len(peers) < config.prune_after:
        return False
    return max(curve) < median(peers)


@dataclass
class TrialScore:
    """What a finished trial reports: the objective values and what the leaderboard shows."""

    values: list[float]
    attrs: dict[str, Any]


def run_trial(
    trial: optuna.Trial, plan: TrialPlan, data: PreparedData, config: TuneConfig
) -> TrialScore:
    """Train and score one trial; raises :class:`optuna.TrialPruned` when it is hopeless."""
    started = time.perf_counter()
    torch.manual_seed(config.base.seed)
    model = build_model(model_config(plan.strategy, data, config.base.spec.target))
    splits = data.splits if reads_tokens(model) else data.pooled
    metric = resolve_metric(plan.train.metric, model, splits["val"])
    single = len(config.objectives) == 1
    curve: list[float] = []

    def watch(record: dict[str, Any]) -> None:
        curve.append(float(record[f"val_{metric}"]))
        trial.set_user_attr(CURVE_ATTR, curve)
        if single:
            trial.report(curve[-1], len(curve))
        finished = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if hopeless(curve, [t.user_attrs.get(CURVE_ATTR, []) for t in finished], config):
            trial.set_user_attr("epochs_run", len(curve))
            raise optuna.TrialPruned(f"epoch {len(curve)}: {metric} {max(curve):.4f}")

    result = train(model, splits["train"], splits["val"], plan.train, on_epoch=watch)
    model.eval()
    test = prepare_batches(splits["test"])
    predictions = predict(model, test)
    tests = model.task.metrics(predictions.logits, predictions.labels)
    latency = latency_ms(model, slice_batch(restrict(test[0], model.modalities), 1))
    parameters, _ = parameter_counts(model)
    folder = trial_folder(config.out, trial.number)
    numbers = {f"test_{k}": float(v) for k, v in tests.items() if isinstance(v, (int, float))}
    save_model(model, folder, {"val_" + metric: result.best_metric, **numbers})
    best_record = result.history[result.best_epoch - 1] if result.best_epoch else {}
    attrs = {
        "metric": metric,
        "val": result.best_metric,
        "val_loss": float(best_record.get("val_loss", float("nan"))),
        **numbers,
        "latency_ms": latency,
        "params": parameters,
        "epochs_run": len(curve),
        "seconds": time.perf_counter() - started,
        "folder": str(folder),
    }
    objective = {"accuracy": result.best_metric, "latency": latency, "params": float(parameters)}
    return TrialScore([objective[o] for o in config.objectives], attrs)
