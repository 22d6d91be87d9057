"""Training settings (:class:`TrainConfig`) and what a run returns (:class:`TrainResult`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from omnifuse.errors import ConfigError, OmnifuseError
from omnifuse.train.tracking import MlflowSettings


class TrainingError(OmnifuseError):
    """Training cannot go on: the loss became NaN or infinite, or a checkpoint does not fit."""


_Config = TypeVar("_Config", bound="TrainConfig")

RESUMABLE_CHANGES = frozenset(
    {
        "resume",
        "stop_after_epochs",
        "progress",
        "checkpoint_dir",
        "log_dir",
        "num_workers",
        "device",
        "threads",
        "max_minutes",
        "mlflow",
    }
)
"""Settings that may differ between a run and its resumption without changing the result."""


@dataclass
class TrainConfig:
    """How to train.

    AdamW (``lr``, ``weight_decay`` on weight matrices only; ``encoder_lr`` for encoders trained
    end to end, default ``lr``) with linear warmup over ``warmup_ratio`` of the steps, then
    cosine decay to zero. ``grad_clip`` caps the global gradient norm (None: off). ``bf16`` runs
    forward passes under bfloat16 autocast. Early stopping watches ``metric`` on the validation
    set (``"auto"``: the task's main metric, e.g. accuracy; ``"loss"``: validation loss) and stops
    after ``patience`` epochs without an improvement larger than ``min_delta`` (None: never),
    restoring the best weights. ``modality_dropout`` overrides the model's own setting.
    ``checkpoint_dir`` keeps a resumable checkpoint after every epoch; ``resume`` continues from
    it. ``stop_after_epochs`` ends this call after that many epochs as an interruption would
    (for time-boxed jobs). ``max_minutes`` is a wall-clock budget for the training itself: the
    loop ends after the first optimizer step past it (mid-epoch if need be), validates that last,
    partial epoch and keeps the best weights as at a normal end (None: no budget). ``log_dir``
    gets ``metrics.jsonl`` (and TensorBoard events when TensorBoard is installed).
    ``accumulate`` sums the gradients of that many batches before each optimizer step (a larger
    effective batch in the same memory). ``threads`` sets torch's CPU threads while training
    (None: unchanged). ``mlflow`` (``{tracking_uri, experiment, run_name}``, the ``mlflow``
    extra) also tracks the run in MLflow: params, per-epoch metrics and, for a fusion run, the
    model folder (:mod:`omnifuse.train.tracking`).
    """

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    encoder_lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    grad_clip: float | None = 1.0
    bf16: bool = False
    patience: int | None = 5
    min_delta: float = 0.0
    metric: str = "auto"
    seed: int = 0
    modality_dropout: float | None = None
    checkpoint_dir: str | None = None
    resume: bool = False
    stop_after_epochs: int | None = None
    log_dir: str | None = None
    progress: bool = True
    device: str = "auto"
    num_workers: int = 0
    eval_batch_size: int = 256
    accumulate: int = 1
    threads: int | None = None
    max_minutes: float | None = None
    mlflow: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def mlflow_settings(self) -> MlflowSettings | None:
        """``mlflow`` parsed (None: no MLflow tracking)."""
        if self.mlflow is None:
            return None
        return MlflowSettings.from_dict(self.mlflow)

    @classmethod
    def from_dict(cls: type[_Config], data: Any, *, prefix: str = "train") -> _Config:
        """Build and validate; a bad key or value is a ``ConfigError`` naming ``prefix.key``."""
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix!r} must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) {[f'{prefix}.{k}' for k in unknown]}")
        config = cls(**data)
        config.validate(prefix=prefix)
        return config

    def validate(self, *, prefix: str = "train") -> None:
        checks: list[tuple[str, bool, str]] = [
            ("epochs", _int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("batch_size", _int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("lr", _num(self.lr) and self.lr > 0, "a positive number"),
            (
                "encoder_lr",
                self.encoder_lr is None or (_num(self.encoder_lr) and self.encoder_lr >= 0),
                "a number >= 0 or null",
            ),
            ("weight_decay", _num(self.weight_decay) and self.weight_decay >= 0, "a number >= 0"),
            (
                "warmup_ratio",
                _num(self.warmup_ratio) and 0 <= self.warmup_ratio < 1,
                "a number in [0, 1)",
            ),
            (
                "grad_clip",
                self.grad_clip is None or (_num(self.grad_clip) and self.grad_clip > 0),
                "a positive number or null",
            ),
            ("bf16", isinstance(self.bf16, bool), "true or false"),
            (
                "patience",
                self.patience is None or (_int(self.patience) and self.patience >= 1),
                "an integer >= 1 or null",
            ),
            ("min_delta", _num(self.min_delta) and self.min_delta >= 0, "a number >= 0"),
            ("metric", isinstance(self.metric, str) and bool(self.metric), "a metric name"),
            ("seed", _int(self.seed), "an integer"),
            (
                "modality_dropout",
                self.modality_dropout is None
                or (_num(self.modality_dropout) and 0 <= self.modality_dropout < 1),
                "a number in [0, 1) or null",
            ),
            (
                "checkpoint_dir",
                self.checkpoint_dir is None or isinstance(self.checkpoint_dir, str),
                "a path or null",
            ),
            ("resume", isinstance(self.resume, bool), "true or false"),
            (
                "stop_after_epochs",
                self.stop_after_epochs is None
                or (_int(self.stop_after_epochs) and self.stop_after_epochs >= 1),
                "an integer >= 1 or null",
            ),
            ("log_dir", self.log_dir is None or isinstance(self.log_dir, str), "a path or null"),
            ("progress", isinstance(self.progress, bool), "true or false"),
            ("device", isinstance(self.device, str), "cpu, cuda or auto"),
            ("num_workers", _int(self.num_workers) and self.num_workers >= 0, "an integer >= 0"),
            (
                "eval_batch_size",
                _int(self.eval_batch_size) and self.eval_batch_size >= 1,
                "an integer >= 1",
            ),
            ("accumulate", _int(self.accumulate) and self.accumulate >= 1, "an integer >= 1"),
            (
                "threads",
                self.threads is None or (_int(self.threads) and self.threads >= 1),
                "an integer >= 1 or null",
            ),
            (
                "max_minutes",
                self.max_minutes is None or (_num(self.max_minutes) and self.max_minutes > 0),
                "a positive number of minutes or null",
            ),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"{prefix}.{key}: expected {expected}, got {getattr(self, key)!r}"
                )
        if self.mlflow is not None:
            MlflowSettings.from_dict(self.mlflow, prefix=f"{prefix}.mlflow")
        if self.resume and not self.checkpoint_dir:
            raise ConfigError(f"{prefix}.resume needs {prefix}.checkpoint_dir")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class TrainResult:
    """``history``: one record per epoch (train loss, validation metrics, lr, seconds);
    the best value of ``metric`` and its (1-based) epoch; wall time of this call;
    ``out_of_time``: the run ended at ``max_minutes``."""

    history: list[dict[str, Any]]
    best_metric: float
    best_epoch: int
    seconds: float
    metric: str = "loss"
    stopped_early: bool = False
    completed: bool = True
    out_of_time: bool = False
    steps: int = 0
    skipped_inputs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
