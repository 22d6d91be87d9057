"""Crash safety: acknowledged writes survive SIGKILL, a torn log tail, and a flush cut short at
any point; the reopened index is consistent and keeps working."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from crash_worker import BATCH, batch

from omnifuse.index import create_index, open_index
from omnifuse.index.snapshot import read_pointer, wal_path
from omnifuse.index.wal import encode_record

WORKER = Path(__file__).with_name("crash_worker.py")
TIMEOUT_S = 180


def run_worker(*args: str) -> subprocess.Popen[str]:
    """The worker as a subprocess, killed if it is still running after ``TIMEOUT_S``."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(TIMEOUT_S, proc.kill)
    watchdog.daemon = True
    watchdog.start()
    return proc


def ingest_then_kill(backend: str, path: Path, first: int, acks: int) -> list[int]:
    """Start an ingesting process, SIGKILL it right after its ``acks``-th acknowledgement."""
    proc = run_worker("ingest", backend, str(path), str(first))
    acked: list[int] = []
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        if line.startswith("ACK "):
            acked.append(int(line.split()[1]))
        if len(acked) == acks:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert len(acked) == acks, proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL
    return acked


def check_recovered(path: Path, acked: list[int]) -> None:
    """Every acknowledged batch is there exactly; the one in flight is all there or absent; the
    count has no phantoms; searches find each item once."""
    index = open_index(path)
    try:
        for number in sorted(set(acked)):
            ids, vectors, metadata = batch(number)
            got = index.get(ids)
            assert all(item is not None for item in got), f"batch {number} lost items"
            np.testing.assert_array_equal(np.stack([g["vector"] for g in got]), vectors)  # type: ignore[index]
            assert [g["metadata"] for g in got] == metadata  # type: ignore[index]
        in_flight = sum(g is not None for g in index.get(batch(max(acked) + 1)[0]))
        assert in_flight in (0, BATCH)
        assert len(index) == len(set(acked)) * BATCH + in_flight
        for number in sorted(set(acked))[:: max(1, len(acked) // 4)]:
            ids, vectors, _ = batch(number)
            results = index.search(vectors[:4], k=5, filter={"batch": number})
            for item, hits in zip(ids[:4], results, strict=True):
                assert hits[0].id == item
                assert len({hit.id for hit in hits}) == len(hits) == 5
    finally:
        index.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["faiss-hnsw", "faiss-ivf", "milvus"])
def test_sigkill_during_ingest_loses_nothing_acknowledged(backend: str, tmp_path: Path) -> None:
    path = tmp_path / "ix"
    # the worker flushes after batches 3, 7, 11, ...: each kill lands on an add or in a flush
    acked = ingest_then_kill(backend, path, 0, acks=8)
    check_recovered(path, acked)
    acked += ingest_then_kill(backend, path, max(acked) + 1, acks=4)  # recover, then die again
    check_recovered(path, acked)


@pytest.mark.slow
def test_flush_cut_short_at_every_step_reopens_consistent(tmp_path: Path) -> None:
    expected_ids = [f"b{n}-{i}" for n in range(4) for i in range(BATCH)][20:]
    crash_points = 0
    for crash_at in range(40):
        path = tmp_path / f"ix-{crash_at}"
        proc = run_worker("flush-crash", str(path), str(crash_at))
        out, err = proc.communicate()
        if "FLUSHED" in out:
            break
        assert proc.returncode == 9, err
        crash_points += 1
        index = open_index(path)
        try:
            assert len(index) == len(expected_ids)
            got = index.get(expected_ids)
            assert all(g is not None for g in got)
            np.testing.assert_array_equal(got[-1]["vector"], batch(3)[1][-1])  # type: ignore[index]
            assert index.get(["b0-0"]) == [None]
            hits = index.search(batch(2)[1][:1], k=3, filter={"batch": 2})[0]
            assert hits[0].id == "b2-0"
            index.add(*batch(7))
            index.flush()
        finally:
            index.close()
        reopened = open_index(path)
        assert len(reopened) == len(expected_ids) + BATCH
        reopened.close()
    assert crash_points >= 8  # four renames, the pointer, four removals of the old generation


def test_torn_log_tail_is_cut_and_the_rest_kept(tmp_path: Path) -> None:
    index = create_index("faiss-flat", tmp_path / "ix", dim=32)
    for number in range(3):
        index.add(*batch(number))
    index.flush()
    index.add(*batch(3))
    index.delete(["b0-0"])
    crashed = tmp_path / "crashed"
    shutil.copytree(index.path, crashed)  # the files as a crash at this instant leaves them
    index.close()
    log = wal_path(crashed, int(read_pointer(crashed)["generation"]))
    intact = log.stat().st_size
    torn = encode_record({"op": "add", "ids": ["t"], "metadata": [{}]}, b"\0" * 128)
    with open(log, "ab") as f:
        f.write(torn[:-7])
    recovered = open_index(crashed)
    try:
        assert len(recovered) == 4 * BATCH - 1
        assert recovered.get(["t", "b0-0", "b3-5"])[:2] == [None, None]
        assert log.stat().st_size == intact
        recovered.add(["after"], np.ones((1, 32)))
    finally:
        recovered.close()
    again = open_index(crashed)
    assert len(again) == 4 * BATCH and again.get(["after"])[0] is not None
    again.close()


def test_unflushed_log_replays_on_open(tmp_path: Path) -> None:
    index = create_index("faiss-ivf", tmp_path / "ix", dim=32, train_min=200, nlist=4)
    index.add(*batch(0))
    index.flush()
    for number in range(1, 6):
        index.add(*batch(number))  # IVF trains during these adds, and again during replay
    index.delete([f"b1-{i}" for i in range(10)])
    crashed = tmp_path / "crashed"
    shutil.copytree(index.path, crashed)
    index.close()
    recovered = open_index(crashed)
    try:
        assert len(recovered) == 6 * BATCH - 10
        hits = recovered.search(batch(4)[1][:1], k=1)[0]
        assert hits[0].id == "b4-0"
        assert recovered.get(["b1-3", "b1-10"])[0] is None
    finally:
        recovered.close()
