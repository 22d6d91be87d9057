"""Milvus server against Milvus Lite embedded: search throughput on the same data, side by side.

Both sides are omnifuse's ``milvus`` backend over the same engine, milvus-lite's. **embedded**:
the collection lives in an index folder and pymilvus runs Milvus Lite's gRPC server on a thread
of this process. **server**: the collection lives on a ``milvus-lite server`` started as a
separate process on a loopback port, opened by URI, as serving replicas share an index
(docs/DEPLOY.md). Same vectors (``--size`` clustered unit vectors, from bench/search.py), same
queries, exact ``FLAT`` index on both; the hits of both are checked against NumPy's exact top-10.

Rows (each pair alternates, median of ``--rounds``): all queries in one call; ``--single``
queries one call each; the same single queries from ``--threads`` client threads at once. Ingest
(durable adds in batches of ``--batch``) is timed once per side, one after the other.

    python bench/scale_milvus.py                 # about 2 minutes on 2 cores
    python bench/scale_milvus.py --size 2000 --rounds 2   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from benchkit import alternate, free_port, markdown_table
from omnifuse.index import VectorIndex, create_index
from search import clustered_vectors, hit_rows, ingest, near_queries, recall

K = 10
COLLECTION = "bench"
STARTUP_TIMEOUT_S = 60.0


@contextmanager
def milvus_server(data_dir: Path) -> Iterator[str]:
    """A ``milvus-lite server`` process on a free loopback port; yields its URI."""
    port = free_port()
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("milvus-lite server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def one_at_a_time(index: VectorIndex, queries: np.ndarray) -> list[Any]:
    return [index.search(q[None], K)[0] for q in queries]


def threaded(
    index: VectorIndex, queries: np.ndarray, pool: ThreadPoolExecutor, threads: int
) -> Callable[[], Any]:
    """``threads`` clients on ``pool``, each searching its share of ``queries`` a call at a time."""
    parts = np.array_split(queries, threads)
    return lambda: list(pool.map(lambda part: one_at_a_time(index, part), parts))


def note(message: str, since: float) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"[{time.perf_counter() - since:6.1f} s] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--queries", type=int, default=500, help="queries in the batched call")
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--threads", type=int, default=4, help="client threads at once")
    parser.add_argument("--batch", type=int, default=1_000, help="items per durable add")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    vectors, labels = clustered_vectors(args.size, args.dim, args.clusters, rng)
    queries = near_queries(vectors, args.queries, rng)
    singles = queries[: args.single]
    metadata = [{"cluster": int(c)} for c in labels]
    truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :K]
    print(
        f"{args.size:,} vectors × {args.dim} in {args.clusters} clusters, {args.queries} queries; "
        f"milvus-lite {version('milvus-lite')}, pymilvus {version('pymilvus')}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    workdir = Path(tempfile.mkdtemp(prefix="omnifuse-bench-milvus-"))
    try:
        with milvus_server(workdir / "server-data") as uri:
            note("ingest", t0)
            server = create_index("milvus", uri, dim=args.dim, collection=COLLECTION)
            server_rate, server_flush = ingest(server, vectors, metadata, args.batch)
            embedded = create_index("milvus", workdir / "embedded", dim=args.dim)
            embedded_rate, embedded_flush = ingest(embedded, vectors, metadata, args.batch)

            note("batched", t0)
            rows: list[tuple[str, int, float, float]] = []
            e_s, s_s, e_hits, s_hits = alternate(
                lambda: embedded.search(queries, K), lambda: server.search(queries, K), args.rounds
            )
            found = hit_rows(s_hits)
            assert found == hit_rows(e_hits), "the server and the embedded index differ"
            exact = recall(found, truth)
            rows.append(("all queries in one call", args.queries, e_s, s_s))

            note("one at a time", t0)
            e_s, s_s, _, _ = alternate(
                lambda: one_at_a_time(embedded, singles),
                lambda: one_at_a_time(server, singles),
                args.rounds,
            )
            rows.append(("one query a call", args.single, e_s, s_s))

            note(f"{args.threads} threads", t0)
            with ThreadPoolExecutor(args.threads) as pool:
                e_s, s_s, _, _ = alternate(
                    threaded(embedded, singles, pool, args.threads),
                    threaded(server, singles, pool, args.threads),
                    args.rounds,
                )
            rows.append((f"one query a call, {args.threads} threads", args.single, e_s, s_s))
            embedded.close()
            server.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    note("done", t0)

    print(f"\nrecall@{K} of both against NumPy's exact top-{K}: {exact:.3f} (same hits)\n")
    print(
        markdown_table(
            ["search, k=10", "queries", "embedded q/s", "server q/s", "server / embedded"],
            [
                [name, f"{n}", f"{n / e:,.0f}", f"{n / s:,.0f}", f"{e / s:.2f}"]
                for name, n, e, s in rows
            ],
            "lrrrr",
        )
    )
    print()
    print(
        markdown_table(
            [f"durable ingest, batches of {args.batch:,}", "vectors/s", "flush s"],
            [
                ["embedded", f"{embedded_rate:,.0f}", f"{embedded_flush:.2f}"],
                ["server", f"{server_rate:,.0f}", f"{server_flush:.2f}"],
            ],
            "lrr",
        )
    )


if __name__ == "__main__":
    main()
