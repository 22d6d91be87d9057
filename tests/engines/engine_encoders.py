"""Encoders the Ray tests send to actors: one that dies once mid-batch, one that is slow."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from omnifuse.encoders.image_trainable import SmallCNNImageEncoder
from omnifuse.types import Encoded


class KillOnce(SmallCNNImageEncoder):
    """cnn-image whose process dies in its first batch, once per ``marker`` file: the file is
    written first (with the pid that is about to die), so the retried batch runs normally."""

    marker: str = ""

    def run_batch(self, batch: Any) -> Encoded:
        if self.marker and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return super().run_batch(batch)


class Slow(SmallCNNImageEncoder):
    """cnn-image that sleeps ``delay`` seconds per batch; the delay is a plain attribute, so it
    is not part of the encoder's fingerprint."""

    delay: float = 0.0

    def run_batch(self, batch: Any) -> Encoded:
        time.sleep(self.delay)
        return super().run_batch(batch)
