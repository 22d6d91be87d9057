"""End to end: a tiny av-digits sweep writes its leaderboard, plots and studies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.errors import ConfigError
from omnifuse.sweep import SweepConfig, run_sweep, strategies_for

SMALL_ENCODERS = {
    "image": {"name": "cnn-image", "dim": 16, "image_size": 16, "channels": [8]},
    "audio": {"name": "logmel-cnn", "dim": 16, "n_mels": 16},
}
TINY_STRATEGIES = [
    "concat",
    "late-mean",
    "transformer",
    "audio only",
    "image only",
    "concat + modality dropout 0.5",
]
"""What :func:`tiny_config` sweeps, in order: its fusions, each modality alone, the dropout twin."""


def tiny_config(out: Path, **changes: object) -> SweepConfig:
    settings: dict[str, object] = {
        "data": "av-digits",
        "fusions": ["concat", "late-mean", "transformer"],
        "out": out,
        "size": 100,
        "epochs": 2,
        "batch_size": 16,
        "dim": 16,
        "encoders": SMALL_ENCODERS,
        "singles": ["concat"],
        "dropout_study": ["concat"],
        "progress": False,
    }
    settings.update(changes)
    return SweepConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sweep_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sweep")
    return out, run_sweep(tiny_config(out, noise=True, noise_samples=8))


def test_strategies_expand_fusions_singles_and_the_dropout_twin(tmp_path: Path) -> None:
    names = [s.name for s in strategies_for(tiny_config(tmp_path))]
    assert names == TINY_STRATEGIES
    everything = strategies_for(tiny_config(tmp_path, fusions=["all"], singles=[]))
    assert len(everything) >= 13 and everything[-1].modality_dropout == 0.5
    lrtf = next(s for s in everything if s.fusion == "low-rank-tensor")
    assert lrtf.fusion_cfg["rank"] == 40 and lrtf.fusion_cfg["dim"] == 120
    assert lrtf.fusion_cfg["modality_dims"] == {"image": 48, "audio": 192}
    assert lrtf.head_cfg == {"hidden": 100}
    with pytest.raises(ConfigError, match="unknown fusion"):
        strategies_for(tiny_config(tmp_path, fusions=["nope"]))


def test_sweep_writes_leaderboard_plots_and_summary(sweep_out: tuple[Path, object]) -> None:
    out, _ = sweep_out
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert len(rows) == 6
    assert {r["strategy"] for r in rows} == set(TINY_STRATEGIES)
    accuracies = [float(r["accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert [int(r["rank"]) for r in rows] == list(range(1, 7))
    fused = next(r for r in rows if r["strategy"] == "concat")
    assert fused["only_audio"] and fused["only_image"] and fused["shapley_audio"]
    assert int(fused["parameters"]) > 0 and float(fused["latency_ms"]) > 0
    markdown = (out / "leaderboard.md").read_text()
    assert markdown.count("\n| ") == 1 + 6 and "low-rank" not in markdown
    for name in ("accuracy_latency", "missing", "contributions", "robustness"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    record = json.loads((out / "sweep.json").read_text())
    assert record["splits"]["test"] == 15 and record["timings"]["train_eval_s"] > 0
    study = record["dropout_studies"][0]
    assert study["fusion"] == "concat" and set(study["drop_without"]) == {"audio", "image"}
    assert record["summary"]["strategies"] == 6


def test_sweep_results_hold_every_evaluation(sweep_out: tuple[Path, object]) -> None:
    _, result = sweep_out
    by_name = {r.name: r for r in result.results}  # type: ignore[attr-defined]
    concat = by_name["concat"]
    assert len(concat.subsets) == 3 and set(concat.shapley) == {"audio", "image"}
    assert 0.0 <= concat.metrics["ece"] <= 1.0 and "macro_f1" in concat.metrics
    assert by_name["audio only"].subsets == [] and by_name["audio only"].modalities == ["audio"]
    curves = {(c.column, c.noise): c for c in concat.noise}
    assert set(curves) == {
        ("image", "gaussian"),
        ("image", "occlusion"),
        ("audio", "white-noise"),
    }
    assert all(len(c.accuracy) == len(c.levels) == 5 for c in curves.values())
    # level 0 re-encodes the clean inputs: it scores as the cached features do on those samples
    assert curves[("image", "gaussian")].accuracy[0] == curves[("audio", "white-noise")].accuracy[0]


def test_second_run_reuses_the_data_and_cache(sweep_out: tuple[Path, object]) -> None:
    out, first = sweep_out
    again = run_sweep(tiny_config(out, fusions=["concat"], singles=[], dropout_study=[]))
    assert "build_s" not in again.timings
    assert again.results[0].accuracy == next(
        r.accuracy
        for r in first.results
        if r.name == "concat"  # type: ignore[attr-defined]
    )


def test_cli_sweep_prints_the_table(tmp_path: Path, sweep_out: tuple[Path, object]) -> None:
    out, _ = sweep_out
    config = tiny_config(out)
    data_dir, cache_dir = config.folders()
    args = ["sweep", "--fusions", "concat,max", "--size", "100", "--epochs", "1", "--dim", "16"]
    args += ["--out", str(tmp_path), "--data-dir", str(data_dir), "--cache", str(cache_dir)]
    args += ["--singles", "none", "--dropout-study", "none", "--workers", "1", "--no-plots"]
    for column, spec in SMALL_ENCODERS.items():
        args += [f"--encoder={column}={spec['name']}"]
        args += [f"--encoder={column}.{k}={json.dumps(v)}" for k, v in spec.items() if k != "name"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        "concat" in result.output and "max" in result.output and "best fusion" not in result.output
    )
    assert (tmp_path / "leaderboard.csv").is_file() and not (tmp_path / "missing.png").exists()


def test_worker_processes_give_the_same_results(sweep_out: tuple[Path, object]) -> None:
    out, first = sweep_out
    config = tiny_config(out, fusions=["concat", "late-mean"], singles=[], dropout_study=[])
    config.workers = 2
    parallel = run_sweep(config)
    expected = {r.name: r.metrics for r in first.results}  # type: ignore[attr-defined]
    assert [r.name for r in parallel.results] == ["concat", "late-mean"]
    for result in parallel.results:
        assert result.metrics == pytest.approx(expected[result.name], abs=1e-6)
        assert result.cost is not None and result.cost.parameters > 0


def test_a_manifest_path_sweeps_like_the_built_in_name(
    tmp_path: Path, sweep_out: tuple[Path, object]
) -> None:
    """The same data as a user's manifest (with --encoder and --target) gives the same
    test accuracies as the built-in name, and the same reports."""
    out, first = sweep_out
    data_dir, _ = tiny_config(out).folders()
    args = ["sweep", "--data", str(data_dir / "manifest.jsonl"), "--target", "label"]
    args += ["--fusions", "concat,late-mean", "--epochs", "2", "--batch-size", "16"]
    args += ["--dim", "16", "--singles", "concat", "--dropout-study", "none", "--workers", "1"]
    args += ["--out", str(tmp_path), "--no-plots"]
    for column, spec in SMALL_ENCODERS.items():
        args += [f"--encoder={column}={spec['name']}"]
        args += [f"--encoder={column}.{k}={json.dumps(v)}" for k, v in spec.items() if k != "name"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r["strategy"]: r for r in csv.DictReader((tmp_path / "leaderboard.csv").open())}
    expected = {r.name: r.accuracy for r in first.results}  # type: ignore[attr-defined]
    for name in ("concat", "late-mean", "audio only", "image only"):
        assert float(rows[name]["accuracy"]) == pytest.approx(expected[name], abs=1e-9), name
    assert rows["concat"]["shapley_audio"] and rows["concat"]["only_image"]
    # the folder is a built-in av-digits: its per-fusion settings come with it
    mine = tiny_config(tmp_path, data=str(data_dir / "manifest.jsonl"), fusions=["all"])
    lrtf = next(s for s in strategies_for(mine) if s.fusion == "low-rank-tensor")
    assert lrtf.fusion_cfg["rank"] == 40 and lrtf.head_cfg == {"hidden": 100}


def test_sweep_data_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a built-in dataset"):
        SweepConfig(data=str(tmp_path / "missing.jsonl")).spec  # noqa: B018
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text('{"id": "a", "image": "a.png", "label": "x"}\n')
    with pytest.raises(ConfigError, match="not modality column"):
        SweepConfig(data=str(manifest), encoders={"audio": {"name": "logmel-cnn"}}).spec  # noqa: B018
    spec = SweepConfig(data=str(manifest)).spec
    assert spec.columns == ("image",) and spec.target == "label"
    assert spec.encoders["image"]["name"] == "effnet-lite0"
