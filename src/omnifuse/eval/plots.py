"""Figures of a sweep (matplotlib, Agg backend, PNG): what the leaderboard says, at a glance.

- ``accuracy_latency.png``: test accuracy against latency per sample, one labelled point per
  strategy (up and to the left is better);
- ``robustness.png``: accuracy against noise level, one panel per (column, noise), one line per
  strategy;
- ``missing.png``: accuracy with each subset of modalities present, grouped by strategy;
- ``contributions.png``: exact Shapley values of each modality, grouped by strategy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.errors import MissingDependencyError
from omnifuse.eval.report import StrategyResult, all_modalities, ranked

DPI = 90


def pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise MissingDependencyError("matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return path


def accuracy_vs_latency(results: Sequence[StrategyResult], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    points = [(r.cost.latency_ms, r.accuracy, r.name) for r in results if r.cost is not None]
    for latency, accuracy, name in points:
        single = " only" in name
        ax.scatter(latency, accuracy, s=30, marker="s" if single else "o")
        ax.annotate(
            name, (latency, accuracy), fontsize=7, xytext=(3, 2), textcoords="offset points"
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency per sample, ms (batch 1, cached features; log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy vs latency")
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def _level_labels(levels: Sequence[float]) -> list[str]:
    return ["clean" if math.isinf(v) else f"{v:g}" for v in levels]


def _line_style(name: str, index: int) -> dict[str, Any]:
    """Distinct colours for many strategies; dashed single-modality baselines, dotted
    modality-dropout twins."""
    import matplotlib

    colours = matplotlib.colormaps["tab20"]
    style = "--" if " only" in name else ":" if "dropout" in name else "-"
    return {"color": colours(index % colours.N), "linestyle": style}


def robustness_curves(results: Sequence[StrategyResult], path: Path) -> Path:
    plt = pyplot()
    panels = list(dict.fromkeys((c.column, c.noise) for r in results for c in r.noise))
    if not panels:
        raise ValueError("no noise curves to plot")
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    for ax, (column, noise) in zip(axes.flat, panels, strict=False):
        unit = ""
        labels: list[str] = []
        for index, r in enumerate(ranked(results)):
            for curve in r.noise:
                if (curve.column, curve.noise) == (column, noise):
                    x = np.arange(len(curve.levels))
                    style = _line_style(r.name, index)
                    ax.plot(x, curve.accuracy, marker="o", ms=2, lw=1, label=r.name, **style)
                    labels, unit = _level_labels(curve.levels), curve.unit
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(f"{column}: {noise} ({unit})")
        ax.set_ylabel("test accuracy")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _grouped_bars(
    ax: Any, groups: Sequence[str], series: dict[str, list[float]], ylabel: str
) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, groups, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(True, axis="y", alpha=0.3)


def missing_subsets(results: Sequence[StrategyResult], path: Path) -> Path:
    plt = pyplot()
    fused = [r for r in ranked(results) if len(r.modalities) > 1 and r.subsets]
    subsets = list(dict.fromkeys(s.label for r in fused for s in r.subsets))
    series = {
        label: [next((s.accuracy for s in r.subsets if s.label == label), math.nan) for r in fused]
        for label in subsets
    }
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(fused) + 2), 4.5))
    _grouped_bars(ax, [r.name for r in fused], series, "test accuracy with only these present")
    ax.set_title("Missing modalities")
    return save_figure(fig, path)


def contributions(results: Sequence[StrategyResult], path: Path) -> Path:
    plt = pyplot()
    fused = [r for r in ranked(results) if len(r.modalities) > 1 and r.shapley]
    modalities = all_modalities(fused)
    series = {m: [r.shapley.get(m, math.nan) for r in fused] for m in modalities}
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(fused) + 2), 4.5))
    _grouped_bars(ax, [r.name for r in fused], series, "Shapley value (true-class probability)")
    ax.set_title("Modality contributions")
    return save_figure(fig, path)


def write_plots(results: Sequence[StrategyResult], out: Path) -> dict[str, Path]:
    """Every figure that the results allow, as PNG files in ``out``."""
    paths = {"accuracy_latency": accuracy_vs_latency(results, out / "accuracy_latency.png")}
    fused = [r for r in results if len(r.modalities) > 1]
    if any(r.subsets for r in fused):
        paths["missing"] = missing_subsets(results, out / "missing.png")
    if any(r.shapley for r in fused):
        paths["contributions"] = contributions(results, out / "contributions.png")
    if any(r.noise for r in results):
        paths["robustness"] = robustness_curves(results, out / "robustness.png")
    return paths
