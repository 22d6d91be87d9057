"""A user's manifest with a sensor track and a table record sweeps like any other: every fusion
trains on them, missing-modality scores, Shapley values, noise curves of the new kinds and the
per-group accuracy all come out, with no special case for the new kinds."""

from __future__ import annotations

from pathlib import Path

from omnifuse.sweep import SweepConfig, run_sweep
from synthetic_manifests import write_tracks_and_records


def test_series_and_tables_sweep_with_every_evaluation(tmp_path: Path) -> None:
    manifest = write_tracks_and_records(tmp_path)
    config = SweepConfig(
        data=str(manifest),
        fusions=["concat", "transformer", "late-mean"],
        out=tmp_path / "sweep",
        epochs=30,
        batch_size=32,
        dim=32,
        head_hidden=32,
        singles=["concat"],
        dropout_study=[],
        noise=True,
        noise_samples=16,
        group_by="condition",
        progress=False,
        workers=1,
    )
    result = run_sweep(config)
    by_name = {r.name: r for r in result.results}
    assert set(by_name) == {"concat", "transformer", "late-mean", "track only", "record only"}
    fused = max(by_name[n].accuracy for n in ("concat", "transformer"))
    singles = max(by_name[n].accuracy for n in ("track only", "record only"))
    assert fused > singles + 0.15, (fused, singles)  # the label needs both inputs
    concat = by_name["concat"]
    assert set(concat.groups) == {"short", "long"}
    assert {tuple(s.present) for s in concat.subsets} >= {("track",), ("record",)}
    assert set(concat.shapley) == {"track", "record"}
    assert {c.noise for c in concat.noise} == {"jitter", "stale", "missing-fields"}
    board = (tmp_path / "sweep" / "leaderboard.md").read_text()
    assert "@ short" in board and "track only" in board
