"""Cost profile (parameters, latency, peak memory) and leaderboard files."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from evalkit import Modalities, Output, make_batches
from torch import nn

from omnifuse.eval.cost import Cost, measure_cost, parameter_counts, peak_memory_mib, state_bytes
from omnifuse.eval.inference import restrict
from omnifuse.eval.plots import write_plots
from omnifuse.eval.report import (
    StrategyResult,
    leaderboard_csv,
    leaderboard_markdown,
    write_leaderboard,
)
from omnifuse.eval.robustness import NoiseCurve, SubsetScore
from omnifuse.fusion import FusionOutput
from omnifuse.types import Encoded


class WideModel(nn.Module):
    """Linear 1000 → 4000 → ReLU → 10 on modality ``a``: a known activation size."""

    def __init__(self) -> None:
        super().__init__()
        self.fusion = Modalities(("a",))
        self.net = nn.Sequential(nn.Linear(1000, 4000), nn.ReLU(), nn.Linear(4000, 10))

    def forward(self, features: Mapping[str, Encoded], present: torch.Tensor) -> Output:
        logits = self.net(features["a"].pooled)
        return Output(logits, FusionOutput(fused=logits))


def wide_batch(size: int = 256) -> object:
    labels = torch.zeros(size, dtype=torch.long)
    return restrict(make_batches(labels, {"a": torch.randn(size, 1000)}, size)[0], ("a",))


def test_parameter_counts_total_and_trainable() -> None:
    model = WideModel()
    assert parameter_counts(model) == (1000 * 4000 + 4000 + 4000 * 10 + 10,) * 2
    model.net[0].requires_grad_(False)
    assert parameter_counts(model) == (4_044_010, 40_010)
    assert state_bytes(model) == 4_044_010 * 4


def test_cpu_peak_memory_counts_weights_and_the_largest_activations() -> None:
    model = WideModel()
    peak = peak_memory_mib(model, wide_batch())  # type: ignore[arg-type]
    assert peak is not None
    weights = state_bytes(model) / 2**20
    hidden = 256 * 4000 * 4 / 2**20  # one (256, 4000) float32 activation
    # the linear output and its ReLU are alive together at the peak; nothing much else is
    assert weights + 2 * hidden <= peak <= weights + 2 * hidden + 1.0


def test_measure_cost_reports_latency_for_one_sample_and_a_batch() -> None:
    cost = measure_cost(WideModel(), wide_batch(64), train_seconds=1.5, repeats=3)  # type: ignore[arg-type]
    assert cost.parameters == 4_044_010 and cost.train_seconds == 1.5 and cost.batch_size == 64
    assert 0 < cost.latency_ms < cost.batch_latency_ms
    assert cost.peak_memory_mib is not None and cost.peak_memory_mib > 15


def result(name: str, accuracy: float, modalities: list[str], params: int) -> StrategyResult:
    subsets = []
    if len(modalities) > 1:
        subsets = [
            SubsetScore(tuple(modalities), accuracy, 0.8),
            SubsetScore(("audio",), accuracy - 0.1, 0.6),
            SubsetScore(("image",), accuracy - 0.3, 0.4),
        ]
    return StrategyResult(
        name=name,
        fusion=name.split()[0],
        kind="feature",
        modalities=modalities,
        metrics={"accuracy": accuracy, "macro_f1": accuracy - 0.01, "ece": 0.05},
        val_metric=0.99,
        subsets=subsets,
        shapley={"audio": 0.3, "image": 0.2} if len(modalities) > 1 else {},
        cost=Cost(params, params, 2.0, 0.25, 3.5, 256, 1.5),
        noise=[NoiseCurve("audio", "white-noise", "SNR dB", [math.inf, 10.0], [accuracy, 0.5])],
    )


RESULTS = [
    result("audio only", 0.89, ["audio"], 1000),
    result("max", 0.9633, ["audio", "image"], 2000),
    result("concat", 0.9633, ["audio", "image"], 3000),
]


def test_markdown_ranks_by_accuracy_then_size_and_formats_numbers() -> None:
    markdown = leaderboard_markdown(RESULTS, "av-digits sweep")
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| # | strategy | kind | accuracy | macro-F1 | ECE | audio only")
    assert lines[1].startswith("| 1 | max | feature | 0.963 | 0.953 | 0.050 | 0.863 | 0.663 |")
    assert lines[2].startswith("| 2 | concat |") and lines[3].startswith("| 3 | audio only |")
    assert "| — | — | — | — | 1,000 | 2.0 | 0.25 | 3.5 | 1.5 |" in lines[3]
    assert markdown.startswith("## av-digits sweep")


def test_csv_holds_raw_numbers() -> None:
    rows = list(csv.DictReader(io.StringIO(leaderboard_csv(RESULTS))))
    assert [r["strategy"] for r in rows] == ["max", "concat", "audio only"]
    assert float(rows[0]["only_image"]) == pytest.approx(0.6633)
    assert rows[2]["only_image"] == "" and rows[2]["modalities"] == "audio"
    assert int(rows[1]["parameters"]) == 3000 and float(rows[0]["shapley_audio"]) == 0.3


def test_files_are_written_and_json_is_strict(tmp_path: Path) -> None:
    paths = write_leaderboard(RESULTS, tmp_path)
    assert all(p.stat().st_size > 100 for p in paths.values())
    text = paths["json"].read_text()
    assert "Infinity" not in text and '"inf"' in text
    data = json.loads(text)["results"]
    assert data[0]["name"] == "max" and data[0]["subsets"][1]["present"] == ["audio"]
    plots = write_plots(RESULTS, tmp_path / "plots")
    assert set(plots) == {"accuracy_latency", "missing", "contributions", "robustness"}
    for path in plots.values():
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
