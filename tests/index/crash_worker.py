"""A process for the durability tests to kill.

``ingest BACKEND PATH FIRST``: open (or create) the index and add batch after batch from batch
number FIRST on, flushing every few batches, printing ``ACK <batch>`` once each ``add`` returned.
It runs until it is killed.

``flush-crash PATH CRASH_AT``: build a known state (a flushed part, then adds and deletes in the
log), then flush with ``os.replace``/``os.unlink`` replaced by a hard exit at call number
CRASH_AT: the process dies at that point of the flush, as in a power cut, leaving whatever files
it had written. Prints ``FLUSHED`` if the flush finished before the crash point.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.index import create_index, open_index

DIM = 32
BATCH = 64
FLUSH_EVERY = 4


def batch(number: int) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """The ids, vectors and metadata of batch ``number`` (the same in every process)."""
    vectors = np.random.default_rng(number).normal(size=(BATCH, DIM)).astype(np.float32)
    ids = [f"b{number}-{i}" for i in range(BATCH)]
    metadata = [{"batch": number, "i": i, "tag": "x" * (i % 5)} for i in range(BATCH)]
    return ids, vectors, metadata


def ingest(backend: str, path: Path, first: int) -> None:
    if (path / "index.json").exists():
        index = open_index(path)
    else:
        config = {"train_min": 300, "nlist": 8} if backend == "faiss-ivf" else {}
        index = create_index(backend, path, dim=DIM, **config)
    number = first
    while True:
        index.add(*batch(number))
        print(f"ACK {number}", flush=True)
        if number % FLUSH_EVERY == FLUSH_EVERY - 1:
            index.flush()
        number += 1


def flush_crash(path: Path, crash_at: int) -> None:
    index = create_index("faiss-hnsw", path, dim=DIM, M=8)
    for number in range(3):
        index.add(*batch(number))
    index.flush()
    index.add(*batch(3))
    index.delete([f"b0-{i}" for i in range(20)])
    index.add(*batch(1))  # upsert the same items again
    calls = 0

    def crash_on(real: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            if calls == crash_at:
                os._exit(9)
            calls += 1
            return real(*args, **kwargs)

        return wrapped

    os.replace = crash_on(os.replace)
    os.unlink = crash_on(os.unlink)
    index.flush()
    print("FLUSHED", flush=True)
    os._exit(0)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "ingest":
        ingest(args[0], Path(args[1]), int(args[2]))
    else:
        flush_crash(Path(args[0]), int(args[1]))
