"""Encoding one batch of cache work, here or on an engine's worker.

A batch is a list of ``(content key, raw value)``; its result is the rows of the items that
encoded and the failures of those that did not (:data:`BatchResult`). :class:`EncoderWorker` is
the picklable recipe an engine's worker follows: it rebuilds the column's encoder from its
registry name and config under the same seed and checks that the rebuilt encoder has the
column's fingerprint, so a worker with other weights (another package version on a cluster
node) fails the run instead of writing features that differ from the column's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from omnifuse import encoders as encoder_registry
from omnifuse.data.cache.keys import fingerprint, fingerprint_fields
from omnifuse.data.cache.store import Row
from omnifuse.encoders.base import Encoder
from omnifuse.errors import ConfigError, InputError
from omnifuse.types import Encoded

Batch = list[tuple[str, Any]]
BatchResult = tuple[list[Row], dict[str, dict[str, str]]]
"""Rows of the items that encoded; content key → {error, reason} of those that failed."""


def build_encoder(
    spec: str | Encoder, config: dict[str, Any], *, device: str, dtype: str, seed: int
) -> tuple[Encoder, dict[str, Any]]:
    """The encoder and its fingerprint fields; random initialisation is seeded."""
    if isinstance(spec, Encoder):
        return spec, fingerprint_fields(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = encoder_registry.create(spec, **{"device": device, "dtype": dtype, **config})
    config = json.loads(json.dumps(config, default=str))
    return encoder, fingerprint_fields(encoder, spec, config)


@contextlib.contextmanager
def inference(encoder: Encoder) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd while extracting features; mode restored after."""
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        encoder.train(was_training)


def encode_batch(encoder: Encoder, batch: Batch) -> BatchResult:
    """Preprocess items one by one, encode the good ones together, return their rows."""
    keys, items = [], []
    rejected: dict[str, dict[str, str]] = {}
    for key, raw in batch:
        try:
            items.append(encoder.preprocess(raw))
        except InputError as err:
            rejected[key] = {"error": type(err).__name__, "reason": str(err)}
            continue
        keys.append(key)
    if not items:
        return [], rejected
    out: Encoded = encoder.run_batch(encoder.collate(items))
    tokens, mask, pooled = out.tokens.cpu(), out.mask.cpu(), out.pooled.cpu()
    return [Row(key, tokens[i][mask[i]], pooled[i]) for i, key in enumerate(keys)], rejected


def _compact(result: BatchResult) -> BatchResult:
    """Rows that own their memory: a row sliced from the batch tensor would otherwise carry the
    whole batch with it when pickled."""
    rows, rejected = result
    return [Row(r.key, r.tokens.clone(), r.pooled.clone()) for r in rows], rejected


@dataclass(frozen=True)
class EncoderWorker:
    """What a worker needs to encode a column's batches as this process would (module doc)."""

    spec: str | Encoder
    fingerprint: str
    config: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "fp32"
    seed: int = 0

    def __call__(self) -> Callable[[Batch], BatchResult]:
        encoder, fields = build_encoder(
            self.spec, dict(self.config), device=self.device, dtype=self.dtype, seed=self.seed
        )
        if fingerprint(fields) != self.fingerprint:
            raise ConfigError(
                f"encoder {fields['encoder']!r} built on a worker differs from the one the cache "
                "column was opened with (other weights, config or package versions); install the "
                "same omnifuse and encoder packages on every worker"
            )
        encoder.eval()

        def run(batch: Batch) -> BatchResult:
            with torch.no_grad():
                return _compact(encode_batch(encoder, batch))

        return run
