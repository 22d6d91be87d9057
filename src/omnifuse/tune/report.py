"""A study's reports: ``leaderboard.md``/``.csv`` (every trial, best validation score first),
``tune.json`` (settings, counts, the best and the Pareto trials), ``pareto.png`` (validation
accuracy against latency, the front drawn) or ``history.png`` for one objective, and ``best/``,
the best trial's model folder (for several objectives: the Pareto trial with the best
validation score)."""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from omnifuse.eval.plots import pyplot, save_figure
from omnifuse.eval.report import json_safe
from omnifuse.fileio import staged_folder, write_json_atomic, write_text_atomic
from omnifuse.tune.config import TuneConfig

COLUMNS = (
    "trial", "state", "fusion", "dim", "dropout", "lr", "weight_decay", "modality_dropout",
    "epochs", "epochs_run", "val", "test_accuracy", "latency_ms", "params", "pareto",
)  # fmt: skip


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per completed or pruned trial, the best validation score first."""
    front = {t.number for t in pareto_trials(study)}
    result = []
    for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        curve = trial.user_attrs.get("curve") or [float("nan")]
        val = trial.user_attrs.get("val", max(curve))
        result.append(
            {
                "trial": trial.number,
                "state": trial.state.name.lower(),
                **{k: trial.params.get(k, "") for k in COLUMNS[2:9]},
                "epochs_run": trial.user_attrs.get("epochs_run", len(curve)),
                "val": val,
                "test_accuracy": trial.user_attrs.get("test_accuracy", ""),
                "latency_ms": trial.user_attrs.get("latency_ms", ""),
                "params": trial.user_attrs.get("params", ""),
                "pareto": "yes" if trial.number in front else "",
            }
        )
    return sorted(result, key=lambda r: (r["state"] != "complete", -float(r["val"])))


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    if len(study.directions) == 1:
        best = best_trial(study)
        return [best] if best is not None else []
    return list(study.best_trials)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The trial with the best validation accuracy (among several objectives, on the Pareto
    front); ties — common when validation accuracy saturates — go to the lower validation loss."""
    if len(study.directions) == 1:
        candidates = study.get_trials(states=(TrialState.COMPLETE,))
    else:
        candidates = list(study.best_trials)
    if not candidates:
        return None

    def rank(trial: FrozenTrial) -> tuple[float, float]:
        loss = float(trial.user_attrs.get("val_loss", math.inf))
        return float(trial.values[0]), -(loss if math.isfinite(loss) else math.inf)

    return max(candidates, key=rank)


def summary(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's number, settings and scores (its validation curve left out)."""
    attrs = {k: v for k, v in trial.user_attrs.items() if k != "curve"}
    return {"trial": trial.number, **trial.params, **attrs}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def leaderboard_markdown(table: list[dict[str, Any]], title: str) -> str:
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in COLUMNS) + " |" for r in table]
    return "\n".join(lines) + "\n"


def leaderboard_csv(table: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()


def pareto_plot(study: optuna.Study, table: list[dict[str, Any]], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    done = [r for r in table if r["state"] == "complete" and r["latency_ms"] != ""]
    front = sorted((r for r in done if r["pareto"]), key=lambda r: r["latency_ms"])
    ax.scatter([r["latency_ms"] for r in done], [r["val"] for r in done], s=22, alpha=0.5)
    ax.plot([r["latency_ms"] for r in front], [r["val"] for r in front], "o-", color="C3")
    for r in front:
        ax.annotate(
            f"#{r['trial']} {r['fusion']}", (r["latency_ms"], r["val"]), fontsize=7,
            xytext=(3, 2), textcoords="offset points",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("latency per sample, ms (batch 1, cached features; log scale)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{study.study_name}: {len(done)} trials, Pareto front in red")
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def history_plot(study: optuna.Study, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    numbers = [t.number for t in trials]
    values = [float(t.values[0]) for t in trials]
    best = [max(values[: i + 1]) for i in range(len(values))]
    ax.scatter(numbers, values, s=22, alpha=0.6, label="trial")
    ax.step(numbers, best, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{study.study_name}: {len(trials)} completed trials")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def write_reports(study: optuna.Study, config: TuneConfig) -> dict[str, Path]:
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    table = rows(study)
    paths = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv"}
    write_text_atomic(paths["markdown"], leaderboard_markdown(table, f"{config.base.data} tuning"))
    write_text_atomic(paths["csv"], leaderboard_csv(table))
    best = best_trial(study)
    if best is not None and "folder" in best.user_attrs:
        paths["best"] = out / "best"
        with staged_folder(paths["best"]) as staging:
            shutil.copytree(best.user_attrs["folder"], staging, dirs_exist_ok=True)
    if config.plots and table:
        if len(config.objectives) > 1:
            paths["pareto"] = pareto_plot(study, table, out / "pareto.png")
        elif any(r["state"] == "complete" for r in table):
            paths["history"] = history_plot(study, out / "history.png")
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    record = {
        "study": study.study_name,
        "storage": config.storage_location,
        "data": config.base.data,
        "objectives": list(config.objectives),
        "counts": {s: states.count(s) for s in sorted(set(states))},
        "epochs_trained": sum(int(r["epochs_run"]) for r in table),
        "best": None if best is None else summary(best),
        "pareto": [t.number for t in pareto_trials(study)],
    }
    paths["json"] = out / "tune.json"
    write_json_atomic(paths["json"], json_safe(record))
    return paths
