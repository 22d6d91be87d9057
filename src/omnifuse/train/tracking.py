"""Experiment tracking in MLflow (the ``mlflow`` extra): a training run's settings as params,
every epoch's numbers as metrics and, for a fusion run, the saved model folder as artifacts.

The loop (:func:`omnifuse.train.loop.fit`) opens one MLflow run per call on rank 0 only, when
``train.mlflow`` is set: params are the flattened training config and whatever the objective
reports (a fusion model's config as ``model.*``), metrics take the names of ``metrics.jsonl``
(``train_loss``, ``val_accuracy``, ``lr``, …) with the epoch as the step. A resumed run opens a
new MLflow run and replays the checkpoint's history first, as ``metrics.jsonl`` is rewritten, so
each MLflow run holds the whole curve. Everything goes through an ``MlflowClient`` bound to the
configured store — never MLflow's global active run — so trainings in threads of one process
(a tuner's trials) never write into each other's runs.

The tracking URI is any MLflow store URI (``sqlite:///runs/mlflow.db``, ``http://host:5000``,
``file:///…``) or a plain folder path, taken as a local file store. MLflow 3 refuses file
stores unless ``MLFLOW_ALLOW_FILE_STORE`` is set; choosing one here is that choice, so it is set
(unless already set) when the URI is a file store.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnifuse.errors import ConfigError, MissingDependencyError

__all__ = ["MlflowRun", "MlflowSettings", "flatten_params", "log_model_folder", "require_mlflow"]

EXTRA = "mlflow"
MAX_PARAM_CHARS = 6000
"""MLflow's limit on a param value (longer values are cut, with a marker)."""
MAX_KEY_CHARS = 250
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
_BAD_KEY_CHARS = re.compile(r"[^\w\-. /]")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")  # two letters at least: not "C:"


@dataclass(frozen=True)
class MlflowSettings:
    """``train.mlflow``: where to track (``tracking_uri``: an MLflow store URI or a folder for a
    local file store), the experiment's name (created when missing) and the run's name (default:
    the name of the log folder, which for a fusion run is its model folder)."""

    tracking_uri: str
    experiment: str = "omnifuse"
    run_name: str | None = None

    @classmethod
    def from_dict(cls, data: Any, *, prefix: str = "train.mlflow") -> MlflowSettings:
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{prefix}: expected a mapping {{tracking_uri, experiment, run_name}}, got {data!r}"
            )
        unknown = sorted(set(data) - {"tracking_uri", "experiment", "run_name"})
        if unknown:
            raise ConfigError(f"unknown key(s) {[f'{prefix}.{k}' for k in unknown]}")
        uri, experiment = data.get("tracking_uri"), data.get("experiment", "omnifuse")
        run_name = data.get("run_name")
        if not isinstance(uri, str) or not uri.strip():
            raise ConfigError(f"{prefix}.tracking_uri: expected a store URI or folder, got {uri!r}")
        if not isinstance(experiment, str) or not experiment.strip():
            raise ConfigError(f"{prefix}.experiment: expected a name, got {experiment!r}")
        if run_name is not None and (not isinstance(run_name, str) or not run_name.strip()):
            raise ConfigError(f"{prefix}.run_name: expected a name or null, got {run_name!r}")
        return cls(uri, experiment, run_name)

    @property
    def store_uri(self) -> str:
        """The URI for MLflow: a plain path becomes the ``file://`` URI of its absolute form."""
        if _URI_SCHEME.match(self.tracking_uri):
            return self.tracking_uri
        return Path(self.tracking_uri).expanduser().resolve().as_uri()

    @property
    def is_file_store(self) -> bool:
        return self.store_uri.startswith("file:")


def require_mlflow() -> None:
    """Fail before any training when tracking is asked for and MLflow is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise MissingDependencyError("MLflow tracking (train.mlflow)", extra=EXTRA)


def _client(settings: MlflowSettings) -> Any:
    require_mlflow()
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as err:
        raise MissingDependencyError(f"MLflow tracking ({err.name})", extra=EXTRA) from None
    if settings.is_file_store:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=settings.store_uri)


class MlflowRun:
    """One MLflow run written through its own client."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    @classmethod
    def start(
        cls,
        settings: MlflowSettings,
        *,
        params: Mapping[str, Any],
        history: Iterable[Mapping[str, Any]] = (),
        default_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> MlflowRun:
        """Create the run (and its experiment when missing), log ``params`` (nested mappings
        flattened to dotted keys) and replay ``history`` (earlier epochs' records)."""
        client = _client(settings)
        from mlflow.exceptions import MlflowException

        try:
            experiment_id = _experiment_id(client, settings.experiment)
            run = client.create_run(
                experiment_id, run_name=settings.run_name or default_name, tags=dict(tags or {})
            )
        except MlflowException as err:
            raise ConfigError(f"train.mlflow: {settings.tracking_uri}: {err.message}") from None
        tracked = cls(client, run.info.run_id)
        tracked.log_params(params)
        for record in history:
            tracked.log_epoch(record)
        return tracked

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = [Param(k, v) for k, v in flatten_params(params).items()]
        for start in range(0, len(flat), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=flat[start : start + PARAMS_PER_BATCH])

    def log_epoch(self, record: Mapping[str, Any], *, step: int | None = None) -> None:
        """The record's numbers (not its epoch, which is the step) as metrics of their names."""
        self.log_metrics(
            {k: v for k, v in record.items() if k != "epoch"},
            step=int(record.get("epoch", 0)) if step is None else step,
        )

    def log_metrics(self, values: Mapping[str, Any], *, step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [
            Metric(_key(k), float(v), stamp, step) for k, v in values.items() if _is_number(v)
        ]
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + METRICS_PER_BATCH])

    def log_folder(self, folder: str | Path, artifact_path: str = "model") -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def end(self, *, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def log_model_folder(
    settings: MlflowSettings,
    run_id: str,
    folder: str | Path,
    final_metrics: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    step: int = 0,
) -> None:
    """Add a saved model folder to a (finished) run as artifacts under ``model/``, and its final
    evaluation as metrics named ``<split>_<metric>`` (``test_accuracy``) at ``step``."""
    run = MlflowRun(_client(settings), run_id)
    for split, values in (final_metrics or {}).items():
        run.log_metrics({f"{split}_{k}": v for k, v in values.items()}, step=step)
    run.log_folder(folder)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.001}}`` → ``{"train.lr": "0.001"}``: nested mappings become dotted
    keys, every other value its JSON text (strings as they are), cut to MLflow's limits."""
    flat: dict[str, str] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, key + "."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > MAX_PARAM_CHARS:
            text = text[: MAX_PARAM_CHARS - 3] + "..."
        flat[_key(key)] = text
    return flat


def _experiment_id(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name))
        except MlflowException:  # another process created it first
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise ConfigError(f"train.mlflow.experiment: {name!r} is deleted; restore it or rename")
    return str(experiment.experiment_id)


def _key(name: str) -> str:
    return _BAD_KEY_CHARS.sub("_", name)[:MAX_KEY_CHARS]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
