"""The command line: help, info, manifest checks, and readable errors instead of tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from omnifuse.cli import app
from omnifuse.errors import ConfigError

runner = CliRunner()


def test_help_lists_subcommands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("info", "data", "demo"):
        assert command in result.output


def test_info_reports_versions_and_system_tools() -> None:
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "torch" in result.output and "espeak-ng" in result.output
    assert "optional extras" in result.output


def test_data_list_names_every_builtin_dataset() -> None:
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    for name in ("world", "av-digits", "fashion-mnist", "speech-test"):
        assert name in result.output


def test_data_build_passes_builder_options_and_refuses_unknown_ones(tmp_path: Path) -> None:
    out = tmp_path / "world"
    args = ["data", "build", "world", "--size", "3", "--out", str(out)]
    result = runner.invoke(app, [*args, "--option", "video_clips=0", "--option", "image_size=40"])
    assert result.exit_code == 0, result.output
    params = json.loads((out / "dataset.json").read_text())["params"]
    assert params["video_clips"] == 0 and params["image_size"] == 40
    assert "scenes" in result.output  # the summary skips the empty video manifest
    wrong = runner.invoke(app, [*args[:-1], str(tmp_path / "other"), "--option", "colours=3"])
    assert isinstance(wrong.exception, ConfigError) and "video_clips" in str(wrong.exception)
    assert not (tmp_path / "other").exists()


def test_data_check_prints_bad_lines_and_fails(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    rows = [
        json.dumps({"id": "1", "split": "train", "text": "fine", "label": "a"}),
        "{broken",
        json.dumps({"id": "2", "split": "nope", "text": "x", "label": "b"}),
    ]
    manifest.write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["data", "check", str(manifest)])
    assert result.exit_code == 1
    assert "2 problem(s)" in result.output
    assert "invalid JSON" in result.output and "'nope'" in result.output


def test_data_check_clean_manifest_passes(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"split": "val", "text": "hello", "label": "a"}) + "\n")
    result = runner.invoke(app, ["data", "check", str(manifest)])
    assert result.exit_code == 0 and "no problems" in result.output


def test_typed_errors_print_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "omnifuse", "data", "check", str(tmp_path / "absent.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "InputNotFoundError" in proc.stderr and "manifest not found" in proc.stderr
    assert "Traceback" not in proc.stderr
