"""Leaderboards of strategies: one row each, as Markdown, CSV and JSON.

A :class:`StrategyResult` holds everything evaluated for one trained model; the leaderboard sorts
them by test accuracy and writes the columns a reader compares first (accuracy, macro-F1,
calibration, accuracy with each modality alone, Shapley contributions, cost).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnifuse.eval.cost import Cost
from omnifuse.eval.robustness import NoiseCurve, SubsetScore
from omnifuse.fileio import write_json_atomic, write_text_atomic


@dataclass
class StrategyResult:
    """Test-set evaluation of one trained model.

    ``name`` is the row's label (a fusion name, ``image only``, ``concat + dropout`` ...);
    ``metrics`` are the task metrics (accuracy, macro_f1, precision, recall, ece, ...);
    ``subsets`` the accuracy with only some modalities present; ``shapley`` the exact Shapley
    values of the modalities (mean true-class probability); ``weights`` the mean fusion weights
    where the fusion has them; ``groups`` the accuracy on each value of a manifest column (a
    recording condition, agreement between modalities), to report hard cases on their own.
    """

    name: str
    fusion: str
    kind: str
    modalities: list[str]
    metrics: dict[str, float]
    val_metric: float | None = None
    subsets: list[SubsetScore] = field(default_factory=list)
    shapley: dict[str, float] = field(default_factory=dict)
    ablation: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    cost: Cost | None = None
    noise: list[NoiseCurve] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return float(self.metrics.get("accuracy", math.nan))

    def subset_accuracy(self, present: Sequence[str]) -> float | None:
        wanted = set(present)
        for score in self.subsets:
            if set(score.present) == wanted:
                return score.accuracy
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["subsets"] = [
            {"present": list(s.present), "accuracy": s.accuracy, "p_true": s.true_class_probability}
            for s in self.subsets
        ]
        return data


def ranked(results: Sequence[StrategyResult]) -> list[StrategyResult]:
    """Best test accuracy first (ties: fewer parameters first)."""
    return sorted(results, key=lambda r: (-r.accuracy, r.cost.parameters if r.cost else 0, r.name))


def all_modalities(results: Sequence[StrategyResult]) -> list[str]:
    return sorted({m for r in results for m in r.modalities})


def all_groups(results: Sequence[StrategyResult]) -> list[str]:
    return sorted({g for r in results for g in r.groups})


def without_column(results: Sequence[StrategyResult]) -> list[str]:
    """Modalities that get a "without X" column: only when some model fuses three or more (with
    two, "without X" is the other's "only" column)."""
    return all_modalities(results) if any(len(r.modalities) > 2 for r in results) else []


def accuracy_without(result: StrategyResult, modality: str) -> float | None:
    if modality not in result.modalities or len(result.modalities) < 2:
        return None
    return result.subset_accuracy([m for m in result.modalities if m != modality])


def _fmt(value: float | int | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def leaderboard_rows(results: Sequence[StrategyResult]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of the leaderboard, best first."""
    modalities = all_modalities(results)
    headers = ["#", "strategy", "kind", "accuracy", "macro-F1", "ECE"]
    dropped, groups = without_column(results), all_groups(results)
    headers += [f"{m} only" for m in modalities]
    headers += [f"without {m}" for m in dropped]
    headers += [f"@ {g}" for g in groups]
    headers += [f"φ {m}" for m in modalities]
    headers += ["params", "train s", "ms/sample", "ms/batch", "peak MiB"]
    rows = []
    for rank, r in enumerate(ranked(results), start=1):
        cells = [str(rank), r.name, r.kind]
        cells += [_fmt(r.accuracy), _fmt(r.metrics.get("macro_f1")), _fmt(r.metrics.get("ece"))]
        cells += [
            _fmt(r.subset_accuracy([m]) if m in r.modalities and len(r.modalities) > 1 else None)
            for m in modalities
        ]
        cells += [_fmt(accuracy_without(r, m)) for m in dropped]
        cells += [_fmt(r.groups.get(g)) for g in groups]
        cells += [_fmt(r.shapley.get(m)) for m in modalities]
        c = r.cost
        cells += [
            _fmt(c.parameters) if c else "—",
            _fmt(c.train_seconds, 1) if c else "—",
            _fmt(c.latency_ms, 2) if c else "—",
            _fmt(c.batch_latency_ms, 1) if c else "—",
            _fmt(c.peak_memory_mib, 1) if c else "—",
        ]
        rows.append(cells)
    return headers, rows


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""

    def numeric(column: int) -> bool:
        values = [row[column] for row in rows if row[column] != "—"]
        return bool(values) and all(_is_number(v) for v in values)

    align = ["---:" if numeric(i) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def leaderboard_markdown(results: Sequence[StrategyResult], title: str | None = None) -> str:
    headers, rows = leaderboard_rows(results)
    heading = f"## {title}\n\n" if title else ""
    legend = (
        "\n`X only`: test accuracy with only modality X present (a missing-modality test of the "
        "fused model); `without X`: with every modality but X; `@ G`: accuracy on the test "
        "samples of group G alone; `φ X`: exact Shapley value of modality X (mean true-class "
        "probability); "
        "ECE: expected calibration error; latency on cached features (fusion + head).\n"
    )
    return heading + markdown_table(headers, rows) + legend


def leaderboard_csv(results: Sequence[StrategyResult]) -> str:
    """Machine-readable leaderboard: raw numbers, one row per strategy, best first."""
    modalities = all_modalities(results)
    metric_names = sorted(
        {k for r in results for k, v in r.metrics.items() if isinstance(v, (int, float))}
    )
    headers = ["rank", "strategy", "fusion", "kind", "modalities", "val_metric", *metric_names]
    headers += [f"only_{m}" for m in modalities] + [f"shapley_{m}" for m in modalities]
    headers += [f"weight_{m}" for m in modalities]
    dropped, groups = without_column(results), all_groups(results)
    headers += [f"without_{m}" for m in dropped] + [f"group_{g}" for g in groups]
    headers += ["parameters", "trainable_parameters", "train_seconds"]
    headers += ["latency_ms", "batch_latency_ms", "batch_size", "peak_memory_mib"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for rank, r in enumerate(ranked(results), start=1):
        row: list[Any] = [rank, r.name, r.fusion, r.kind, "+".join(r.modalities), r.val_metric]
        row += [r.metrics.get(k) for k in metric_names]
        row += [r.subset_accuracy([m]) if m in r.modalities else None for m in modalities]
        row += [r.shapley.get(m) for m in modalities] + [r.weights.get(m) for m in modalities]
        row += [accuracy_without(r, m) for m in dropped] + [r.groups.get(g) for g in groups]
        c = r.cost
        row += [c.parameters, c.trainable_parameters, c.train_seconds] if c else [None] * 3
        row += (
            [c.latency_ms, c.batch_latency_ms, c.batch_size, c.peak_memory_mib] if c else [None] * 4
        )
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()


def write_leaderboard(
    results: Sequence[StrategyResult], out: Path, *, title: str | None = None
) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv`` and ``results.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "leaderboard.md",
        "csv": out / "leaderboard.csv",
        "json": out / "results.json",
    }
    write_text_atomic(paths["markdown"], leaderboard_markdown(results, title))
    write_text_atomic(paths["csv"], leaderboard_csv(results))
    data = {"results": [json_safe(r.to_dict()) for r in ranked(results)]}
    write_json_atomic(paths["json"], data)
    return paths


def json_safe(value: Any) -> Any:
    """Replace non-finite floats (an ``inf`` SNR, a NaN metric) by strings, as strict JSON needs."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
