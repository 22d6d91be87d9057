"""Snapshots of a FAISS-backed index: numbered generations committed by one atomic rename.

Generation ``g`` is ``vectors-g.npy`` (every row, tombstones included), ``items-g.jsonl`` (one
``[id, metadata]`` per row, ``[null, null]`` for a tombstone), optionally ``faiss-g.index`` (a
built HNSW or IVF structure, in FAISS's own format) and ``wal-g.log`` (the operations since).
``snapshot.json`` names the current generation and is replaced last, so a crash at any point of a
flush leaves either the old generation with its whole log or the new one with an empty log.
Files of any other generation are leftovers of an interrupted flush and are removed on open.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnifuse.errors import CorruptInputError
from omnifuse.fileio import fsync_dir, write_atomic, write_bytes_atomic
from omnifuse.index.table import RowTable

POINTER = "snapshot.json"
GENERATION_FILE = re.compile(r"^(vectors|items|faiss|wal)-(\d+)\.(npy|jsonl|index|log)$")


@dataclass
class Snapshot:
    generation: int
    table: RowTable
    faiss_blob: bytes | None


def wal_path(folder: Path, generation: int) -> Path:
    return folder / f"wal-{generation}.log"


def _files(folder: Path, generation: int) -> tuple[Path, Path, Path]:
    return (
        folder / f"vectors-{generation}.npy",
        folder / f"items-{generation}.jsonl",
        folder / f"faiss-{generation}.index",
    )


def _corrupt(folder: Path, reason: str) -> CorruptInputError:
    return CorruptInputError(reason, source=folder, modality="index")


def read_pointer(folder: Path) -> dict[str, Any]:
    """The committed generation; a new index that never flushed is generation 0 with no rows."""
    path = folder / POINTER
    if not path.exists():
        return {"generation": 0, "rows": 0, "faiss": False}
    try:
        pointer = json.loads(path.read_text(encoding="utf-8"))
        int(pointer["generation"])
    except (ValueError, KeyError, TypeError) as err:
        raise _corrupt(folder, f"unreadable {POINTER}: {err}") from err
    return dict(pointer)


def write_snapshot(
    folder: Path, generation: int, table: RowTable, faiss_blob: bytes | None
) -> None:
    """Write generation ``generation`` with an empty log, then commit it by renaming the
    pointer. Until that rename the previous generation stays current."""
    vectors_file, items_file, faiss_file = _files(folder, generation)
    write_atomic(vectors_file, lambda f: np.save(f, table.vectors), durable=True, sync_dir=False)
    lines = "".join(
        json.dumps([item, meta], ensure_ascii=False) + "\n"
        for item, meta in zip(table.ids, table.metadata, strict=True)
    )
    write_bytes_atomic(items_file, lines.encode("utf-8"), durable=True, sync_dir=False)
    if faiss_blob is not None:
        write_bytes_atomic(faiss_file, faiss_blob, durable=True, sync_dir=False)
    write_bytes_atomic(wal_path(folder, generation), b"", durable=True, sync_dir=False)
    fsync_dir(folder)
    pointer = {"generation": generation, "rows": table.count, "faiss": faiss_blob is not None}
    write_bytes_atomic(folder / POINTER, (json.dumps(pointer) + "\n").encode("utf-8"), durable=True)


def read_snapshot(folder: Path, dim: int) -> Snapshot:
    """Load the committed generation and check that its files agree with each other."""
    pointer = read_pointer(folder)
    generation, rows = int(pointer["generation"]), int(pointer.get("rows", 0))
    if generation == 0 and rows == 0:
        return Snapshot(0, RowTable(dim), None)
    vectors_file, items_file, faiss_file = _files(folder, generation)
    try:
        vectors = np.load(vectors_file, allow_pickle=False)
        entries = [json.loads(line) for line in items_file.read_text("utf-8").splitlines()]
        blob = faiss_file.read_bytes() if pointer.get("faiss") else None
    except (OSError, ValueError, EOFError) as err:
        raise _corrupt(folder, f"generation {generation} is unreadable: {err}") from err
    if vectors.shape != (rows, dim) or len(entries) != rows:
        raise _corrupt(
            folder,
            f"generation {generation}: {vectors.shape} vectors and {len(entries)} items "
            f"for {rows} rows of dim {dim}",
        )
    ids = [entry[0] for entry in entries]
    metadata = [entry[1] for entry in entries]
    return Snapshot(generation, RowTable.from_rows(vectors, ids, metadata), blob)


def remove_stale(folder: Path, generation: int) -> None:
    """Delete files of every generation but ``generation`` and temporary files."""
    removed = False
    for path in folder.iterdir():
        found = GENERATION_FILE.match(path.name)
        stale = found is not None and int(found.group(2)) != generation
        if stale or (path.name.startswith(".") and path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)
            removed = True
    if removed:
        fsync_dir(folder)
