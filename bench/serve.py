"""The HTTP API against in-process encoding, and dynamic batching against none, in one run.

Two ``omnifuse serve`` subprocesses on loopback (one batching, one not) serve MiniLM; this
process holds its own MiniLM for the in-process reference. Three comparisons:

* **single item**: latency of embedding one sentence over HTTP (``POST /v1/embeddings``,
  keep-alive) against ``encoder.encode([text])`` here, in alternating blocks of 10 calls
  (goal: HTTP p50 ≤ in-process p50 + 2 ms), with httpx (a full client, as applications use)
  and with the minimal client below (what the server itself adds);
* **batch of 64**: sentences per second of one 64-sentence request against
  ``encoder.encode(texts, batch_size=64)``, alternating (goal ≥ 0.9×);
* **32 concurrent clients**, each sending single-sentence requests back to back on its own
  keep-alive connection: requests per second with dynamic batching against the same server
  without it (goal ≥ 2×). These clients are the minimal client: HTTP/1.1 over asyncio
  streams, one write per request, so the load generator does not take the CPU the server is
  measured on.

Every comparison is given on two clocks. **wall**: elapsed time, what a caller sees.
**cpu**: CPU time of the processes doing the work (for HTTP: the client and the server, read
from ``/proc``), which a machine shared with other jobs inflates far less than elapsed time; with
``--threads 1`` no idle worker threads spin into the count. Responses use
``encoding_format="base64"``, as the official OpenAI client asks by default; the float rows show
what a JSON list of numbers costs on top.

    python bench/serve.py                      # about three minutes on 2 cores
    python bench/serve.py --threads 1 --rounds 100 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from benchkit import free_port, markdown_table, sentences, wait_until_up

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL = "minilm"


@dataclass
class Row:
    comparison: str
    clock: str
    reference: str
    reference_value: float
    served: str
    served_value: float
    unit: str
    goal: str = ""

    @property
    def ratio(self) -> float:
        return self.served_value / self.reference_value


@dataclass
class Server:
    url: str
    pid: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(*options: str) -> Iterator[Server]:
    """An ``omnifuse serve`` subprocess on a free loopback port, MiniLM loaded."""
    port = free_port()
    command = [sys.executable, "-m", "omnifuse", "serve", "--port", str(port)]
    command += ["--log-level", "warning", *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": "warm"}, timeout=300)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def embed_request(client: httpx.Client, texts: Sequence[str], encoding: str) -> None:
    response = client.post(
        "/v1/embeddings", json={"model": MODEL, "input": list(texts), "encoding_format": encoding}
    )
    response.raise_for_status()


@dataclass
class Side:
    """Wall seconds of each call, and CPU seconds and calls of the blocks measured."""

    wall: list[float] = field(default_factory=list)
    cpu: float = 0.0
    calls: int = 0

    @property
    def cpu_per_call(self) -> float:
        return self.cpu / self.calls


def timed_block(fn: Callable[[], Any], calls: int, side: Side, server_pid: int | None) -> None:
    """``calls`` calls of ``fn``: wall time of each; CPU time of this process (and of the server
    when ``server_pid`` is given, the only other process involved) over the block."""
    cpu = time.process_time() + (cpu_seconds(server_pid) if server_pid else 0.0)
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        side.wall.append(time.perf_counter() - start)
    side.cpu += time.process_time() + (cpu_seconds(server_pid) if server_pid else 0.0) - cpu
    side.calls += calls


def alternate(
    local: Callable[[], Any], served: Callable[[], Any], server: Server, rounds: int, block: int
) -> tuple[Side, Side]:
    """Blocks of ``block`` calls of each side in turn, ``rounds`` blocks each, after a warm-up."""
    for _ in range(3):
        local(), served()
    a, b = Side(), Side()
    for _ in range(rounds):
        timed_block(local, block, a, None)
        timed_block(served, block, b, server.pid)
    return a, b


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def single_item_rows(encoder: Any, server: Server, calls: int, block: int = 10) -> list[Row]:
    """Latency and CPU of one sentence: httpx with base64 and with float vectors, and the
    minimal client (which shows how much of the difference is httpx's own work)."""
    texts = iter(sentences(6 * calls + 100, seed=1))
    loop = asyncio.new_event_loop()
    minimal = loop.run_until_complete(Connection.open(server.url))

    def minimal_request() -> None:
        body = {"model": MODEL, "input": [next(texts)], "encoding_format": "base64"}
        status, _ = loop.run_until_complete(
            minimal.post("/v1/embeddings", json.dumps(body).encode())
        )
        if status != 200:
            raise RuntimeError(f"HTTP {status}")

    rows = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            variants: list[tuple[str, Callable[[], Any]]] = [
                ("httpx, base64", lambda: embed_request(client, [next(texts)], "base64")),
                ("httpx, float", lambda: embed_request(client, [next(texts)], "float")),
                ("minimal client, base64", minimal_request),
            ]
            for label, request in variants:
                local, served = alternate(
                    lambda: encoder.encode([next(texts)]),
                    request,
                    server,
                    max(1, calls // block),
                    block,
                )
                rows += latency_rows(f"1 sentence ({label})", local, served)
    finally:
        minimal.close()
        loop.close()
    return rows


def latency_rows(name: str, local: Side, served: Side) -> list[Row]:
    rows = [
        Row(
            f"{name}, p{q} latency",
            "wall",
            "encoder.encode",
            percentile(local.wall, q) * 1000,
            "HTTP",
            percentile(served.wall, q) * 1000,
            "ms",
            "≤ +2 ms" if q == 50 else "",
        )
        for q in (50, 99)
    ]
    rows.append(
        Row(
            f"{name}, CPU per request (client + server)",
            "cpu",
            "encoder.encode",
            local.cpu_per_call * 1000,
            "HTTP",
            served.cpu_per_call * 1000,
            "ms",
        )
    )
    return rows


def wall_and_cpu(
    name: str,
    sides: tuple[str, str],
    wall: tuple[float, float],
    cpu: tuple[float, float],
    units: tuple[str, str],
    goal: str,
) -> list[Row]:
    """One comparison's row on each clock, reference side first; the goal is the wall clock's,
    what a caller sees."""
    return [
        Row(name, "wall", sides[0], wall[0], sides[1], wall[1], units[0], goal),
        Row(name, "cpu", sides[0], cpu[0], sides[1], cpu[1], units[1]),
    ]


def batch_rows(encoder: Any, server: Server, rounds: int, size: int = 64) -> list[Row]:
    batches = [sentences(size, seed=100 + i) for i in range(4)]
    counter = iter(range(10**9))
    rows = []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for encoding in ("base64", "float"):
            local, served = alternate(
                lambda: encoder.encode(batches[next(counter) % 4], batch_size=size),
                lambda encoding=encoding: embed_request(
                    client, batches[next(counter) % 4], encoding
                ),
                server,
                rounds,
                1,
            )
            rows += wall_and_cpu(
                f"batch of {size} ({encoding}), throughput",
                ("encoder.encode", "HTTP"),
                (size / statistics.median(local.wall), size / statistics.median(served.wall)),
                (size / local.cpu_per_call, size / served.cpu_per_call),
                ("sentences/s", "sentences/CPU-s"),
                "≥ 0.9×",
            )
    return rows


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol to POST JSON and
    read the answer: a load generator far lighter than a full client, so that on a 2-core machine
    the clients do not take the CPU the server is being measured on."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def concurrent_run(url: str, clients: int, seconds: float) -> tuple[int, int, float]:
    """Requests answered and failed by ``clients`` concurrent single-sentence clients sending
    back to back for ``seconds`` (after one second of warm-up), and the time taken."""
    texts = sentences(4096, seed=7)
    bodies = [
        json.dumps({"model": MODEL, "input": [t], "encoding_format": "base64"}).encode()
        for t in texts
    ]
    done = errors = 0
    connections = [await Connection.open(url) for _ in range(clients)]

    async def worker(i: int, stop_at: float) -> None:
        nonlocal done, errors
        n = i
        while time.perf_counter() < stop_at:
            status, _ = await connections[i].post("/v1/embeddings", bodies[n % len(bodies)])
            if status == 200:
                done += 1
            else:
                errors += 1
            n += clients

    try:
        warm = time.perf_counter() + 1.0
        await asyncio.gather(*(worker(i, warm) for i in range(clients)))
        done = errors = 0
        started = time.perf_counter()
        await asyncio.gather(*(worker(i, started + seconds) for i in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    return done, errors, elapsed


def concurrency_rows(batched: Server, unbatched: Server, clients: int, seconds: float) -> list[Row]:
    """Requests per second (wall) and per CPU-second of the server, batching off and on."""
    wall: dict[str, list[float]] = {"on": [], "off": []}
    per_cpu: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(2):
        for key, target in (("off", unbatched), ("on", batched)):
            cpu = cpu_seconds(target.pid)
            done, errors, elapsed = asyncio.run(concurrent_run(target.url, clients, seconds))
            if errors:
                raise RuntimeError(f"{errors} failed requests with batching {key}")
            wall[key].append(done / elapsed)
            per_cpu[key].append(done / (cpu_seconds(target.pid) - cpu))
    return wall_and_cpu(
        f"{clients} concurrent clients, 1 sentence each",
        ("no batching", "dynamic batching"),
        (statistics.median(wall["off"]), statistics.median(wall["on"])),
        (statistics.median(per_cpu["off"]), statistics.median(per_cpu["on"])),
        ("requests/s", "requests/server-CPU-s"),
        "≥ 2×",
    )


def print_table(rows: Sequence[Row]) -> None:
    head = ["comparison", "clock", "reference", "value", "served", "value", "unit", "ratio", "goal"]
    cells = []
    for r in rows:
        ratio = f"{r.ratio:.2f}"
        if r.unit == "ms":
            ratio = f"{r.served_value - r.reference_value:+.2f} ms"
        reference, served = f"{r.reference_value:,.2f}", f"{r.served_value:,.2f}"
        cells.append(
            [r.comparison, r.clock, r.reference, reference, r.served, served, r.unit, ratio, r.goal]
        )
    print(markdown_table(head, cells, "lllrlrlrl"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200, help="single-item calls per side")
    parser.add_argument("--batch-rounds", type=int, default=15, help="alternating 64-item calls")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency round")
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="per side")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from omnifuse.encoders import create

    print(
        f"# serve bench: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    encoder = create(MODEL)
    common = ("--max-batch", "64", "--max-wait-ms", str(args.max_wait_ms))
    common += ("--threads", str(args.threads))
    with server(*common) as batched, server(*common, "--no-batching") as unbatched:
        rows = single_item_rows(encoder, batched, args.rounds)
        rows += batch_rows(encoder, batched, args.batch_rounds)
        rows += concurrency_rows(batched, unbatched, args.clients, args.seconds)
    print_table(rows)
    print(f"\nload average during the run: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
