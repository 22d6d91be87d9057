"""An index on a Milvus server alone (a ``milvus-lite server`` process on loopback): built, grown
and searched by URI from the API and the CLI, kept across server restarts and crashes, and a
typed, readable error while the server is down."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from index_helpers import brute_force, clustered
from typer.testing import CliRunner

from milvus_lite_server import MilvusServer
from omnifuse.cli import app
from omnifuse.errors import InputNotFoundError, ServiceUnavailableError
from omnifuse.index import IndexUnavailableError, VectorIndex, create_index, open_index

runner = CliRunner()
DIM = 16


@pytest.fixture
def milvus(tmp_path: Path) -> Iterator[MilvusServer]:
    with MilvusServer(tmp_path / "milvus-data") as server:
        yield server


def ids_of(index: VectorIndex, queries: np.ndarray, k: int) -> list[list[str]]:
    return [[h.id for h in hits] for hits in index.search(queries, k=k)]


def test_an_index_on_a_server_needs_no_folder(milvus: MilvusServer) -> None:
    vectors = clustered(300, DIM, seed=1)
    writer = create_index(
        "milvus", milvus.uri, dim=DIM, collection="docs", attributes={"model": "/models/m"}
    )
    with writer:
        writer.add([f"v{i}" for i in range(300)], vectors, [{"n": i} for i in range(300)])
        assert writer.path is None and "collection docs" in writer.location
    with open_index(milvus.uri, collection="docs", read_only=True) as reader:
        assert (reader.dim, reader.metric, len(reader)) == (DIM, "ip", 300)
        assert reader.attributes == {"model": "/models/m"}
        _, rows = brute_force(vectors, vectors[:5], 5)
        assert ids_of(reader, vectors[:5], 5) == [[f"v{r}" for r in row] for row in rows]
    with pytest.raises(InputNotFoundError, match="no such collection"):
        open_index(milvus.uri, collection="absent")


def test_a_reader_sees_what_another_client_adds(milvus: MilvusServer) -> None:
    vectors = clustered(40, DIM, seed=2)
    with create_index("milvus", milvus.uri, dim=DIM) as writer:
        writer.add([f"v{i}" for i in range(20)], vectors[:20])
        with open_index(milvus.uri, read_only=True) as reader:
            assert ids_of(reader, vectors[30:31], 1) != [["v30"]]
            writer.add(["v30"], vectors[30:31], [{"late": True}])
            hit = reader.search(vectors[30:31], k=1)[0][0]
            assert (hit.id, hit.metadata) == ("v30", {"late": True})


def test_a_closed_index_leaves_no_connection_open(milvus: MilvusServer) -> None:
    """pymilvus would keep a shared connection for the life of the process; each index owns
    its own, and closing the index closes it."""
    from pymilvus.client.connection_manager import ConnectionManager

    def connections() -> list[str]:
        stats = ConnectionManager.get_instance().get_stats()["connections"]
        return [c["address"] for c in stats if c["address"].endswith(f":{milvus.port}")]

    with create_index("milvus", milvus.uri, dim=DIM) as writer:
        writer.add(["a"], clustered(1, DIM, seed=6))
        reader = open_index(milvus.uri, read_only=True)
        assert len(connections()) == 2
        reader.close()
        assert len(connections()) == 1
    assert connections() == []


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_data_written_before_a_restart_is_there_after_it(milvus: MilvusServer, how: str) -> None:
    """What ``add`` returned from survives a clean shutdown and a SIGKILL of the server, and
    the client opened before the restart carries on once the server is back."""
    vectors = clustered(200, DIM, seed=3)
    index = create_index("milvus", milvus.uri, dim=DIM, metric="l2")
    index.add([f"v{i}" for i in range(150)], vectors[:150])
    index.add([f"v{i}" for i in range(150, 200)], vectors[150:], [{"batch": 2}] * 50)
    assert index.delete(["v0", "v1"]) == 2
    expected = ids_of(index, vectors[:10], 4)
    getattr(milvus, how)()
    milvus.start()
    try:
        assert len(index) == 198
        assert ids_of(index, vectors[:10], 4) == expected
        index.add(["new"], vectors[:1])
        assert index.search(vectors[:1], k=1)[0][0].id == "new"
    finally:
        index.close()
    with open_index(milvus.uri, read_only=True) as reopened:
        assert (len(reopened), reopened.metric) == (199, "l2")
        assert reopened.get(["v160"])[0]["metadata"] == {"batch": 2}  # type: ignore[index]


def test_a_server_that_is_down_gives_a_typed_readable_error(milvus: MilvusServer) -> None:
    vectors = clustered(10, DIM, seed=4)
    with create_index("milvus", milvus.uri, dim=DIM) as writer:
        writer.add([f"v{i}" for i in range(10)], vectors)
    reader = open_index(milvus.uri, read_only=True)
    milvus.stop()
    started = time.monotonic()
    with pytest.raises(IndexUnavailableError, match=r"does not answer.*is it running") as caught:
        reader.search(vectors[:1], k=3)
    assert isinstance(caught.value, ServiceUnavailableError)
    with pytest.raises(IndexUnavailableError, match=f"no Milvus server answers at {milvus.uri}"):
        open_index(milvus.uri)
    assert time.monotonic() - started < 10.0  # refused at once, no long retry loop
    milvus.start()
    deadline = time.monotonic() + 20.0
    while True:  # gRPC reconnects within a second or two
        try:
            assert ids_of(reader, vectors[:1], 1) == [["v0"]]
            break
        except IndexUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    reader.close()


def test_cli_builds_adds_and_searches_by_uri(milvus: MilvusServer, tmp_path: Path) -> None:
    vectors = clustered(120, DIM, seed=5)
    np.save(tmp_path / "a.npy", vectors[:100])
    np.save(tmp_path / "b.npy", vectors[100:])
    np.save(tmp_path / "q.npy", vectors[110])
    (tmp_path / "a.txt").write_text("".join(f"v{i}\n" for i in range(100)))
    (tmp_path / "b.txt").write_text("".join(f"v{i}\n" for i in range(100, 120)))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"part": "b"}) + "\n" for _ in range(20)))
    where = ["--uri", milvus.uri, "--collection", "cli"]

    def invoke(*args: object) -> str:
        result = runner.invoke(app, ["index", *map(str, args)])
        assert result.exit_code == 0, result.output
        return result.output

    built = invoke("build", *where, "--vectors", tmp_path / "a.npy", "--ids", tmp_path / "a.txt")
    assert "added 100 vector(s)" in built and "milvus" in built
    assert "120 item(s)" in invoke(
        "add", *where, "--vectors", tmp_path / "b.npy", "--ids", tmp_path / "b.txt",
        "--metadata", tmp_path / "b.jsonl",
    )  # fmt: skip
    query = ["--vector", tmp_path / "q.npy", "-k", "3", "--json"]
    hits = [json.loads(line) for line in invoke("search", *where, *query).splitlines()]
    _, rows = brute_force(vectors, vectors[110:111], 3)
    assert [h["id"] for h in hits] == [f"v{r}" for r in rows[0]]
    assert hits[0]["metadata"] == {"part": "b"}
    filtered = invoke("search", *where, *query, "-f", "part=a")
    assert filtered == ""  # only the added items carry a part
    assert "120" in invoke("info", *where)
    assert "deleted 2 of 2" in invoke("delete", *where, "--ids", "v1,v2")
    refused = runner.invoke(app, ["index", "info", str(tmp_path), "--uri", milvus.uri])
    assert refused.exit_code == 2 and "not both" in refused.output


def test_cli_names_a_server_that_is_down(milvus: MilvusServer, tmp_path: Path) -> None:
    """One readable line on stderr and exit status 2, no traceback."""
    np.save(tmp_path / "q.npy", np.ones(DIM, np.float32))
    milvus.stop()
    command = [sys.executable, "-m", "omnifuse", "index", "search", "--uri", milvus.uri]
    proc = subprocess.run(
        [*command, "--vector", str(tmp_path / "q.npy")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "IndexUnavailableError" in proc.stderr and milvus.uri in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_server_stops_cleanly_under_a_parent_that_ignores_sigint(tmp_path: Path) -> None:
    """A process started with SIGINT ignored (a background job of a script) hands that on to
    the server; the server still shuts down at once and cleanly, so a "stop" in these tests is
    never a SIGKILL in disguise."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server = MilvusServer(tmp_path / "data").start()
    finally:
        signal.signal(signal.SIGINT, previous)
    started = time.monotonic()
    server.stop()  # raises if the server had to be killed or exited with an error
    assert time.monotonic() - started < 10.0
