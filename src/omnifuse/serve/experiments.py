"""The experiment folders a server shows: every sweep and tune output under ``--experiments``.

A sweep folder (:func:`omnifuse.sweep.run_sweep`) holds ``leaderboard.csv``, ``results.json``
(per strategy: metrics, accuracy with subsets of modalities, Shapley values), ``sweep.json`` and
PNG plots; a tune folder (:mod:`omnifuse.tune.report`) ``leaderboard.csv``, ``tune.json`` and
``pareto.png`` or ``history.png``. Folders are recognised by those files, up to
:data:`MAX_DEPTH` levels below the root, and named by their path relative to it with ``:``
between the parts (``sweeps:world``), so an id never reaches the filesystem as a path: a request
names an id from the listing and a plot from that folder's own listing.

A file is read only when it resolves inside its folder (a symlink out is ignored), is a regular
file, and is under its size cap; a damaged file is reported in ``problems``, not raised, so one
broken folder never hides the others. Nothing here imports FastAPI: the routes are in
:mod:`omnifuse.serve.routes.experiments`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_DEPTH = 4
MAX_FOLDERS = 5000
"""Folders visited per scan at most, so a huge tree cannot stall a request."""
MAX_TABLE_BYTES = 8 * 1024 * 1024
MAX_JSON_BYTES = 32 * 1024 * 1024
MAX_PLOT_BYTES = 20 * 1024 * 1024
MAX_ROWS = 10_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LEADERBOARD = "leaderboard.csv"
TUNE_RECORD_KEYS = ("study", "data", "objectives", "counts", "epochs_trained", "best", "pareto")
"""What ``tune.json`` shows (its ``storage`` is left out: a database URL may hold a password)."""


class ExperimentFileError(Exception):
    """A file of an experiment folder that cannot be served: ``status`` says why (404 absent,
    413 too large, 415 not what its name says)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Experiment:
    """One sweep or tune folder: ``id`` (its path under the root, parts joined by ``:``),
    ``kind`` (``sweep`` or ``tune``) and the resolved ``folder``."""

    id: str
    kind: str
    folder: Path

    def plots(self) -> list[str]:
        """The names of the folder's PNG files (regular files inside it), sorted."""
        names = []
        for entry in sorted(self.folder.iterdir()):
            if entry.suffix.lower() == ".png" and inside(self.folder, entry.name) is not None:
                names.append(entry.name)
        return names

    def plot_bytes(self, name: str) -> bytes:
        """The PNG called ``name`` in this folder; :class:`ExperimentFileError` otherwise."""
        if name not in self.plots():
            raise ExperimentFileError(
                404, f"experiment {self.id!r} has no plot {name[:100]!r}", "plot_not_found"
            )
        path = inside(self.folder, name)
        assert path is not None
        data = read_capped(path, MAX_PLOT_BYTES)
        if not data.startswith(PNG_MAGIC):
            raise ExperimentFileError(415, f"{name!r} is not a PNG image", "unsupported_format")
        return data


@dataclass
class ExperimentView:
    """What the page shows of one experiment: the leaderboard, plots, models, summary."""

    experiment: Experiment
    title: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    modified: float = 0.0


def kind_of(folder: Path) -> str | None:
    """``tune``, ``sweep`` or None, from the files ``folder`` holds."""
    if not (folder / LEADERBOARD).is_file():
        return None
    if (folder / "tune.json").is_file():
        return "tune"
    if (folder / "sweep.json").is_file() or (folder / "results.json").is_file():
        return "sweep"
    return None


def find_experiments(root: Path) -> dict[str, Experiment]:
    """Every sweep and tune folder at or below ``root``, by id, in path order."""
    base = root.resolve()
    found: dict[str, Experiment] = {}
    visited = 0
    for current, folders, _ in os.walk(base):
        here = Path(current)
        depth = len(here.relative_to(base).parts)
        folders[:] = (
            sorted(f for f in folders if not f.startswith(".")) if depth < MAX_DEPTH else []
        )
        visited += 1
        if visited > MAX_FOLDERS:
            break
        kind = kind_of(here)
        if kind is None:
            continue
        parts = here.relative_to(base).parts
        key = ":".join(parts) if parts else (base.name or "experiment")
        found.setdefault(key, Experiment(key, kind, here))
    return found


def inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` when it resolves to a regular file inside ``folder``, else None."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        return None
    try:
        resolved = (folder / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(folder) or not resolved.is_file():
        return None
    return resolved


def read_capped(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, refused with 413 when over ``limit``."""
    size = path.stat().st_size
    if size > limit:
        raise ExperimentFileError(
            413, f"{path.name!r} is {size} bytes, over the limit of {limit}", "too_large"
        )
    with path.open("rb") as handle:
        return handle.read(limit + 1)[:limit]


def cell(text: str) -> Any:
    """A CSV cell as a number when it is one (finite), None when empty, else the text."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if math.isfinite(value) else None
    return text


def read_leaderboard(folder: Path, view: ExperimentView) -> None:
    path = inside(folder, LEADERBOARD)
    if path is None:
        view.problems.append(f"{LEADERBOARD} is missing or outside the folder")
        return
    try:
        text = read_capped(path, MAX_TABLE_BYTES).decode("utf-8-sig")
    except (ExperimentFileError, UnicodeDecodeError, OSError) as err:
        view.problems.append(f"{LEADERBOARD}: {err}")
        return
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    view.columns = [name or f"column {i + 1}" for i, name in enumerate(header)]
    for number, line in enumerate(reader):
        if number >= MAX_ROWS:
            view.problems.append(f"{LEADERBOARD}: only the first {MAX_ROWS} rows are shown")
            break
        if line:
            view.rows.append({c: cell(v) for c, v in zip(view.columns, line, strict=False)})


def read_record(folder: Path, name: str, view: ExperimentView) -> dict[str, Any]:
    """The JSON object in ``name`` ({} when absent; a damaged file is noted in problems)."""
    path = inside(folder, name)
    if path is None:
        return {}
    try:
        data = json.loads(read_capped(path, MAX_JSON_BYTES))
    except (ExperimentFileError, ValueError, OSError) as err:
        view.problems.append(f"{name}: {err}")
        return {}
    if not isinstance(data, dict):
        view.problems.append(f"{name}: expected a JSON object")
        return {}
    return data


def number(value: Any) -> float | None:
    """A finite number, or None (``results.json`` writes NaN and infinities as strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def numbers(values: Any) -> dict[str, float | None]:
    if not isinstance(values, dict):
        return {}
    return {str(k): number(v) for k, v in values.items()}


def model_of(result: dict[str, Any]) -> dict[str, Any]:
    """One strategy of ``results.json``: what the missing-modality and contribution views
    draw (accuracy with each subset of modalities present, Shapley values, fusion weights)."""
    subsets = []
    for subset in result.get("subsets") or []:
        if isinstance(subset, dict) and isinstance(subset.get("present"), list):
            subsets.append(
                {
                    "present": [str(m) for m in subset["present"]],
                    "accuracy": number(subset.get("accuracy")),
                    "p_true": number(subset.get("p_true")),
                }
            )
    metrics = numbers(result.get("metrics"))
    return {
        "name": str(result.get("name", "")),
        "fusion": str(result.get("fusion", "")),
        "kind": str(result.get("kind", "")),
        "modalities": [str(m) for m in result.get("modalities") or []],
        "accuracy": metrics.get("accuracy"),
        "metrics": metrics,
        "subsets": subsets,
        "shapley": numbers(result.get("shapley")),
        "weights": numbers(result.get("weights")),
        "ablation": numbers(result.get("ablation")),
    }


def data_name(data: Any) -> str:
    """A dataset as the title names it: a built-in name, or a manifest's file name (not the
    server path it was read from)."""
    if not isinstance(data, str) or not data:
        return ""
    return Path(data).name


def view_of(experiment: Experiment, *, models: bool = True) -> ExperimentView:
    """Read one experiment folder for display (blocking file reads); ``models=False`` skips
    the per-strategy results (the listing needs only the table and the summary)."""
    folder = experiment.folder
    view = ExperimentView(experiment)
    read_leaderboard(folder, view)
    view.plots = experiment.plots()
    if experiment.kind == "tune":
        record = read_record(folder, "tune.json", view)
        view.summary = {k: record[k] for k in TUNE_RECORD_KEYS if k in record}
        if "data" in view.summary:
            view.summary["data"] = data_name(view.summary["data"])
        view.title = (
            f"{record.get('study') or experiment.id} ({data_name(record.get('data')) or 'tune'})"
        )
    else:
        record = read_record(folder, "sweep.json", view)
        config = record.get("config")
        config = config if isinstance(config, dict) else {}
        view.summary = {
            k: record[k] for k in ("summary", "splits", "timings", "encoders") if k in record
        }
        view.title = f"{data_name(config.get('data')) or experiment.id} sweep"
        results = read_record(folder, "results.json", view).get("results") if models else []
        view.models = [model_of(r) for r in results or [] if isinstance(r, dict)]
    view.modified = max(
        (p.stat().st_mtime for p in folder.iterdir() if inside(folder, p.name) is not None),
        default=0.0,
    )
    return view
