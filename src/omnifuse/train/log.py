"""Per-epoch metrics: ``metrics.jsonl``, and TensorBoard scalars when TensorBoard is installed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omnifuse.fileio import write_text_atomic

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Writes one JSON line per epoch to ``log_dir/metrics.jsonl`` (nothing when ``log_dir`` is
    None). Numbers also go to TensorBoard (``train_loss`` → ``train/loss``, ``val_accuracy`` →
    ``val/accuracy``) when ``torch.utils.tensorboard`` imports."""

    def __init__(self, log_dir: str | Path | None, history: Sequence[dict[str, Any]] = ()) -> None:
        self.path = Path(log_dir) / METRICS_FILE if log_dir is not None else None
        self.writer: Any = None
        if self.path is None:
            return
        # a resumed run rewrites the file from the checkpoint's history, so it never repeats
        write_text_atomic(self.path, "".join(_line(r) for r in history))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        # a resumed run's writer drops what earlier event files hold past the checkpoint (an
        # epoch logged before an interruption that the checkpoint did not keep), as readers
        # such as TensorBoard's EventAccumulator apply the purge step
        last = history[-1].get("epoch") if history else None
        purge = last + 1 if isinstance(last, int) else None
        self.writer = SummaryWriter(str(self.path.parent), purge_step=purge)

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(_line(record))
        if self.writer is not None:
            for key, value in record.items():
                if (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and key != "epoch"
                ):
                    split, _, name = key.partition("_")
                    self.writer.add_scalar(
                        f"{split}/{name}" if name else key, value, record["epoch"]
                    )
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def read_metrics_log(log_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(log_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
