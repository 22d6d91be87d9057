"""What a sweep concludes: best fusion against best single modality, and the modality-dropout
study (how much accuracy falls when one modality goes missing, without and with dropout)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omnifuse.eval.report import StrategyResult, ranked
from omnifuse.sweep.config import SweepConfig, dropout_twin, fused_strategy, resolve_fusions


@dataclass
class DropoutStudy:
    """Test accuracy of one fusion trained without and with modality dropout, and the accuracy
    each loses when one modality is missing (``drop_*[m]``: all present minus all but ``m``)."""

    fusion: str
    dropout: float
    accuracy_without: float
    accuracy_with: float
    drop_without: dict[str, float]
    drop_with: dict[str, float]

    @property
    def ratio(self) -> dict[str, float | None]:
        """Drop with dropout over drop without, per missing modality (None where nothing fell
        without dropout)."""
        return {
            m: self.drop_with[m] / self.drop_without[m] if self.drop_without[m] > 0 else None
            for m in self.drop_without
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "fusion": self.fusion,
            "dropout": self.dropout,
            "accuracy_without": self.accuracy_without,
            "accuracy_with": self.accuracy_with,
            "drop_without": self.drop_without,
            "drop_with": self.drop_with,
            "ratio": self.ratio,
        }


def missing_drops(result: StrategyResult) -> dict[str, float]:
    """Accuracy lost when each modality alone is missing."""
    drops = {}
    for modality in result.modalities:
        rest = [m for m in result.modalities if m != modality]
        alone = result.subset_accuracy(rest)
        if alone is not None:
            drops[modality] = result.accuracy - alone
    return drops


def dropout_studies(results: Sequence[StrategyResult], config: SweepConfig) -> list[DropoutStudy]:
    by_name = {r.name: r for r in results}
    studies = []
    for name in resolve_fusions(config.dropout_study) if config.dropout_study else []:
        base = by_name[fused_strategy(name, config).name]
        twin = by_name[dropout_twin(fused_strategy(name, config), config.study_dropout).name]
        studies.append(
            DropoutStudy(
                name,
                config.study_dropout,
                base.accuracy,
                twin.accuracy,
                missing_drops(base),
                missing_drops(twin),
            )
        )
    return studies


def summarize(results: Sequence[StrategyResult]) -> dict[str, Any]:
    """Best fusion and best single-modality model on the test set, and the margin in points."""
    fused = ranked([r for r in results if len(r.modalities) > 1])
    single = ranked([r for r in results if len(r.modalities) == 1])
    summary: dict[str, Any] = {"strategies": len(results)}
    if fused:
        summary["best_fusion"] = {"name": fused[0].name, "accuracy": fused[0].accuracy}
    if single:
        summary["best_single"] = {"name": single[0].name, "accuracy": single[0].accuracy}
    if fused and single:
        summary["margin_points"] = 100.0 * (fused[0].accuracy - single[0].accuracy)
    return summary
