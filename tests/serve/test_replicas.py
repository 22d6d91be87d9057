"""Two ``omnifuse serve`` processes sharing one index on a Milvus server (a ``milvus-lite server``
process on loopback), as replicas behind a load balancer are deployed: an item added while both
serve is found through either, and a replica whose index server goes down keeps answering its
other routes, with a JSON 503 for searches until the server is back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_kit import SENTENCES
from typer.testing import CliRunner

from milvus_lite_server import MilvusServer, free_port
from omnifuse.cli import app
from omnifuse.errors import ConfigError
from omnifuse.index import create_index
from omnifuse.serve import ServeConfig
from omnifuse.serve.runner import BackgroundServer

COLLECTION = "sentences"
STARTUP_TIMEOUT_S = 180.0


class Replica:
    """One ``omnifuse serve --index-uri`` process on a loopback port."""

    def __init__(self, uri: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "omnifuse", "serve", "--port", str(self.port)]
        command += ["--index-uri", uri, "--index-collection", COLLECTION]
        command += ["--threads", "1", "--log-level", "warning"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.log = log

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the replica exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError("the replica did not start")

    def search(self, query: str, k: int = 3) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/search", json={"query": query, "k": k}, timeout=120)

    def embed(self, texts: list[str]) -> np.ndarray:
        response = httpx.post(
            f"{self.url}/v1/embeddings", json={"model": "minilm", "input": texts}, timeout=120
        )
        assert response.status_code == 200, response.text
        return np.array([row["embedding"] for row in response.json()["data"]], np.float32)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def index_cli(*args: object) -> str:
    result = CliRunner().invoke(app, ["index", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def write_items(
    folder: Path, name: str, vectors: np.ndarray, rows: list[tuple[str, str]]
) -> list[object]:
    """``--vectors/--ids/--metadata`` files of ``rows`` (id, sentence), as CLI arguments."""
    np.save(folder / f"{name}.npy", vectors)
    (folder / f"{name}.txt").write_text("".join(f"{i}\n" for i, _ in rows))
    lines = "".join(json.dumps({"source": s}) + "\n" for _, s in rows)
    (folder / f"{name}.jsonl").write_text(lines, encoding="utf-8")
    return [
        "--vectors", folder / f"{name}.npy",
        "--ids", folder / f"{name}.txt",
        "--metadata", folder / f"{name}.jsonl",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    with MilvusServer(tmp_path_factory.mktemp("milvus") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def replicas(
    milvus: MilvusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas serving the sentences of :data:`SENTENCES`, embedded through the first."""
    folder = tmp_path_factory.mktemp("replicas")
    pair = (Replica(milvus.uri, folder / "a.log"), Replica(milvus.uri, folder / "b.log"))
    try:
        for replica in pair:
            replica.wait_until_up()
        rows = [(f"s{i:02d}", s) for i, (s, _, _) in enumerate(SENTENCES)]
        vectors = pair[0].embed([s for _, s in rows])
        files = write_items(folder, "base", vectors, rows)
        index_cli("build", "--uri", milvus.uri, "--collection", COLLECTION, *files)
        yield pair
    finally:
        for replica in pair:
            replica.stop()


def test_an_item_added_while_both_serve_is_found_through_either(
    replicas: tuple[Replica, Replica], milvus: MilvusServer, tmp_path: Path
) -> None:
    a, b = replicas
    query = "a lighthouse keeper watches the storm"
    before = b.search(query)
    assert before.status_code == 200, before.text
    assert "lighthouse" not in before.json()["data"][0]["metadata"]["source"]
    sentence = "the old lighthouse keeper watched the storm roll in"
    files = write_items(tmp_path, "new", a.embed([sentence]), [("new-1", sentence)])
    assert f"{len(SENTENCES) + 1} item(s)" in index_cli(
        "add", "--uri", milvus.uri, "--collection", COLLECTION, *files
    )
    for replica in (a, b):
        response = replica.search(query)
        assert response.status_code == 200, response.text
        top = response.json()["data"][0]
        assert (top["id"], top["metadata"]["source"]) == ("new-1", sentence)


def test_a_replica_outlives_its_index_server(
    replicas: tuple[Replica, Replica], milvus: MilvusServer
) -> None:
    a, _ = replicas
    assert a.search("a sleeping cat").status_code == 200
    milvus.stop()
    try:
        down = a.search("a sleeping cat")
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/json"
        error = down.json()["error"]
        assert error["code"] == "service_unavailable" and "does not answer" in error["message"]
        assert httpx.get(f"{a.url}/healthz", timeout=10).status_code == 200
        assert a.embed(["still embedding"]).shape == (1, 384)
    finally:
        milvus.start()
    deadline = time.monotonic() + 30.0
    while (back := a.search("a sleeping cat")).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert back.status_code == 200, back.text
    assert back.json()["data"][0]["metadata"]["source"] == "the cat sleeps on the warm windowsill"


def test_a_replica_starts_before_its_index_server(tmp_path: Path) -> None:
    """Preloading skips an index server that does not answer yet; searches answer 503 until it
    does, then find the index."""
    milvus = MilvusServer(tmp_path / "data")
    config = ServeConfig(
        port=0,
        index_uri=milvus.uri,
        index_collection=COLLECTION,
        encoders={"text": "minilm"},
        preload=True,
    )
    with BackgroundServer(config) as server, httpx.Client(base_url=server.url) as api:
        assert api.get("/healthz").json()["index"] is True
        down = api.post("/v1/search", json={"query": "a cat"})
        assert down.status_code == 503 and down.headers["retry-after"] == "5"
        assert f"no Milvus server answers at {milvus.uri}" in down.json()["error"]["message"]
        with milvus:
            with create_index("milvus", milvus.uri, dim=384, collection=COLLECTION) as index:
                index.add(["only"], np.ones((1, 384), np.float32))
            found = api.post("/v1/search", json={"query": "a cat"}, timeout=60)
            assert found.status_code == 200, found.text
            assert [hit["id"] for hit in found.json()["data"]] == ["only"]


def test_an_index_is_a_folder_or_a_server_uri(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        ServeConfig(index_dir=tmp_path, index_uri="http://127.0.0.1:19530").validate()
    with pytest.raises(ConfigError, match="is not like http://HOST:19530"):
        ServeConfig(index_uri=str(tmp_path)).validate()
