"""An append-only write-ahead log of index operations, one framed record per call.

Frame: ``magic (4) | header length (u32) | payload length (u64) | crc32 (u32)`` then a JSON
header (the operation, ids, metadata) and a binary payload (the float32 vectors, row-major).
Every append is written with one ``write`` and made durable with one ``fsync`` before it
returns, so an acknowledged call survives a crash. A crash mid-append leaves a torn last record:
its length or checksum does not add up, and replay stops there and cuts it off.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"OFW1"
FRAME = struct.Struct("<4sIQI")


@dataclass
class Record:
    """One logged operation: ``header["op"]`` is ``add`` or ``delete``."""

    header: dict[str, Any]
    payload: bytes


def encode_record(header: dict[str, Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    crc = zlib.crc32(payload, zlib.crc32(head))
    return FRAME.pack(MAGIC, len(head), len(payload), crc) + head + payload


def read_records(path: Path) -> tuple[list[Record], int]:
    """Every complete record of the log and the byte offset where the valid part ends."""
    records: list[Record] = []
    if not path.exists():
        return records, 0
    data = path.read_bytes()
    offset = 0
    while offset + FRAME.size <= len(data):
        magic, head_len, payload_len, crc = FRAME.unpack_from(data, offset)
        start = offset + FRAME.size
        end = start + head_len + payload_len
        if magic != MAGIC or end > len(data):
            break
        head = data[start : start + head_len]
        payload = data[start + head_len : end]
        if zlib.crc32(payload, zlib.crc32(head)) != crc:
            break
        try:
            header = json.loads(head)
        except ValueError:
            break
        records.append(Record(header, payload))
        offset = end
    return records, offset


class WriteAheadLog:
    """The open log file of one snapshot generation; appends are durable on return."""

    def __init__(self, path: Path, *, valid_end: int | None = None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if valid_end is not None and os.fstat(self._fd).st_size > valid_end:
            os.ftruncate(self._fd, valid_end)  # drop a torn tail before appending after it
            os.fsync(self._fd)
        self.size = os.fstat(self._fd).st_size

    def append(self, header: dict[str, Any], payload: bytes = b"") -> None:
        frame = memoryview(encode_record(header, payload))
        written = 0
        while written < len(frame):
            written += os.write(self._fd, frame[written:])
        os.fsync(self._fd)
        self.size += len(frame)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def replay_operations(records: list[Record], dim: int) -> Iterator[tuple[str, Any]]:
    """Records as ``("add", (ids, vectors, metadata))`` or ``("delete", ids)``, in log order."""
    import numpy as np

    for record in records:
        op = record.header.get("op")
        if op == "add":
            ids = list(record.header["ids"])
            vectors = np.frombuffer(record.payload, dtype="<f4").reshape(len(ids), dim)
            yield "add", (ids, vectors.astype(np.float32), list(record.header["metadata"]))
        elif op == "delete":
            yield "delete", list(record.header["ids"])
