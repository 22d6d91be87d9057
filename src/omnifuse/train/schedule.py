"""Learning-rate schedule: linear warmup, then cosine decay to zero."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """The lr multiplier at ``step`` (0-based) of ``total``: ``(step + 1) / warmup`` during the
    warmup, then ``½ (1 + cos(π · progress))`` over the remaining steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    remaining = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / remaining)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
