"""A load test of the HTTP API on loopback: concurrent clients for a bounded time, mixed work.

Builds a small AV-digits set, trains a fusion model on it (seconds: seeded random CNN
features), indexes MiniLM vectors of generated sentences, and starts ``omnifuse serve`` on them
in a subprocess. Then ``--clients`` clients send requests back to back for ``--duration``
seconds: 60% text embeddings, 20% predictions (image + audio of a digit, by path under the
allowed root), 20% searches with a filter. Reported: requests, errors (any non-200 or transport
failure), p50/p99 latency per endpoint and overall, throughput, and the server's resident memory
after warm-up and at the end.

    python bench/load.py                          # 32 clients for 60 s
    python bench/load.py --clients 8 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchkit import free_port, markdown_table, sentences, wait_until_up

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMNIFUSE_PROGRESS", "0")


MODEL_NAME = "digits"
MIX = (("embeddings", 0.6), ("predict", 0.2), ("search", 0.2))
TOPICS = ("shapes", "animals", "food", "travel")


def prepare(root: Path) -> dict[str, Any]:
    """Data, a trained fusion model and a sentence index under ``root``."""
    from omnifuse.data.builders import build
    from omnifuse.encoders import create
    from omnifuse.index import create_index
    from omnifuse.train.recipe import RunConfig, run

    digits = root / "allowed" / "digits"
    build("av-digits", digits, seed=0, size=60)
    run(
        RunConfig.from_dict(
            {
                "data": {"manifest": str(digits / "manifest.jsonl"), "target": "label"},
                "encoders": {
                    "image": {"name": "cnn-image", "image_size": 16, "channels": [32]},
                    "audio": {"name": "logmel-cnn"},
                },
                "cache": {"dir": str(root / "cache"), "tokens": False},
                "model": {"fusion": "gated", "fusion_cfg": {"dim": 32}},
                "train": {"epochs": 5, "batch_size": 16, "progress": False},
                "output": str(root / "models" / MODEL_NAME),
            }
        )
    )
    texts = sentences(500, seed=3)
    vectors = create("minilm").encode(texts, batch_size=64).pooled.numpy()
    index = create_index("faiss-flat", root / "index", dim=vectors.shape[1])
    index.add(
        [f"t{i}" for i in range(len(texts))],
        vectors,
        [{"source": t, "label": TOPICS[i % 4], "rank": i % 10} for i, t in enumerate(texts)],
    )
    index.close()
    lines = (digits / "manifest.jsonl").read_text().splitlines()
    return {"digits": [line for line in lines if line.strip()], "root": root}


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux ``/proc``), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def serve(root: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [sys.executable, "-m", "omnifuse", "serve", "--port", str(port)]
    command += ["--models", str(root / "models"), "--index", str(root / "index")]
    command += ["--allowed-root", str(root / "allowed"), "--log-level", "warning", "--preload"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def request_body(kind: str, rng: random.Random, digits: list[dict[str, Any]]) -> tuple[str, Any]:
    if kind == "embeddings":
        return "/v1/embeddings", {"model": "minilm", "input": [f"request {rng.random():.6f}"]}
    if kind == "predict":
        row = rng.choice(digits)
        inputs = {"image": f"digits/{row['image']}", "audio": f"digits/{row['audio']}"}
        return "/v1/predict", {"model": MODEL_NAME, "inputs": inputs}
    query = {"query": f"a {rng.choice(['red', 'blue'])} circle", "k": 5}
    return "/v1/search", query | {"filter": {"label": rng.choice(TOPICS)}}


async def sample_rss(pid: int, every: float, samples: list[float], stop_at: float) -> None:
    """The server's resident memory every ``every`` seconds until ``stop_at``."""
    while time.perf_counter() < stop_at:
        samples.append(rss_mib(pid))
        await asyncio.sleep(every)


async def run_clients(
    url: str,
    digits: list[dict[str, Any]],
    clients: int,
    seconds: float,
    rss: tuple[int, list[float]] | None = None,
) -> tuple[dict[str, list[float]], dict[str, int], float]:
    """Latencies (s) and error counts by endpoint kind, and the elapsed time; with ``rss``
    (server pid, list) the server's memory is sampled every 10 s into the list."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(seed: int, stop_at: float) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < stop_at:
                kind = rng.choices(kinds, weights)[0]
                path, body = request_body(kind, rng, digits)
                started = time.perf_counter()
                try:
                    response = await client.post(path, json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[kind].append(time.perf_counter() - started)
                if not ok:
                    errors[kind] += 1

        started = time.perf_counter()
        tasks = [worker(i, started + seconds) for i in range(clients)]
        if rss is not None:
            tasks.append(sample_rss(rss[0], 10.0, rss[1], started + seconds))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def report(
    latencies: dict[str, list[float]], errors: dict[str, int], elapsed: float
) -> list[list[str]]:
    rows = []
    everything = [t for values in latencies.values() for t in values]
    for kind, values in [*sorted(latencies.items()), ("all", everything)]:
        count = len(values)
        failed = sum(errors.values()) if kind == "all" else errors.get(kind, 0)
        ms = np.asarray(values) * 1000
        rows.append(
            [
                kind,
                f"{count:,}",
                str(failed),
                f"{count / elapsed:,.1f}",
                f"{np.percentile(ms, 50):.1f}",
                f"{np.percentile(ms, 99):.1f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="omnifuse-load-"))
    try:
        setup_started = time.perf_counter()
        data = prepare(root)
        digits = [json.loads(line) for line in data["digits"]]
        with serve(root) as (url, pid):
            asyncio.run(run_clients(url, digits, args.clients, args.warmup))
            samples: list[float] = []
            latencies, errors, elapsed = asyncio.run(
                run_clients(url, digits, args.clients, args.duration, (pid, samples))
            )
            samples.append(rss_mib(pid))
            before, after = samples[0], samples[-1]
        setup = time.perf_counter() - setup_started - args.warmup - elapsed
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"# load: {args.clients} clients for {elapsed:.1f} s (after {args.warmup:g} s warm-up), "
        f"mix {', '.join(f'{k} {w:.0%}' for k, w in MIX)}; setup {setup:.0f} s\n"
    )
    head = ["endpoint", "requests", "errors", "requests/s", "p50 ms", "p99 ms"]
    print(markdown_table(head, report(latencies, errors, elapsed), "lrrrrr"))
    print(
        f"\nserver RSS: {before:.0f} MiB after warm-up, {after:.0f} MiB at the end "
        f"({after - before:+.1f} MiB, {100 * (after - before) / before:+.1f}%); every 10 s: "
        + ", ".join(f"{s:.0f}" for s in samples)
    )


if __name__ == "__main__":
    main()
