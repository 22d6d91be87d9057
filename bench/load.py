"""A load test of the HTTP API on loopback: concurrent clients for a bounded time, mixed work.

Builds a small AV-digits set, trains a fusion model on it (seconds: seeded random CNN
features), runs a small sweep on the same set (two fusions and a single-modality baseline, for
the experiments routes), indexes MiniLM vectors of generated sentences whose items each name a
digit picture, and starts ``omnifuse serve`` on them in a subprocess with ``--allowed-host``.
Then ``--clients`` clients send requests back to back for ``--duration`` seconds, every one
with that Host name, in the proportions of :data:`MIX`: text embeddings, predictions (image +
audio of a digit, by path under the allowed root), searches with a filter, item pictures (as
they are and scaled), the experiment list, one experiment and its plots, speech (espeak-ng),
image generation (4 sampler steps; rare, since the server draws one image at a time; only when
the generator folder ``--generator`` exists), and requests with a foreign Host, which must be
refused with 400. Reported: requests, errors (any other status, or a transport failure),
p50/p99 latency per endpoint and overall, throughput, and the server's resident memory after
warm-up, every 10 s and at the end.

Before the warm-up, one request of each kind runs on its own: a route that does not answer as
expected stops the run there, and what each route loads lazily is loaded before memory is read.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchkit import free_port, markdown_table, sentences, wait_until_up

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMNIFUSE_PROGRESS", "0")


MODEL_NAME = "digits"
MIX = (
    ("embeddings", 0.44),
    ("predict", 0.15),
    ("search", 0.15),
    ("item-image", 0.10),
    ("experiments", 0.03),
    ("experiment", 0.03),
    ("plot", 0.03),
    ("speech", 0.03),
    ("generation", 0.003),
    ("foreign-host", 0.027),
)
"""Endpoint kinds and their shares of the requests (generation's share is left out, not
handed to the others, when there is no generator)."""
EXPECTED = {"foreign-host": 400}
"""The status a kind must get when it is not 200."""
TOPICS = ("shapes", "animals", "food", "travel")
ALLOWED_HOST = "load.omnifuse.test"
FOREIGN_HOST = "rebind.example.com"
GENERATOR = Path(__file__).resolve().parent.parent / "runs" / "generate-world"
SMALL_ENCODERS = {
    "image": {"name": "cnn-image", "dim": 16, "image_size": 16, "channels": [8]},
    "audio": {"name": "logmel-cnn", "dim": 16, "n_mels": 16},
}


@dataclass
class Targets:
    """What requests name: digit rows, indexed item ids, the experiment and its plots."""

    digits: list[dict[str, Any]]
    items: list[str]
    experiment: str = ""
    plots: tuple[str, ...] = ()


def prepare(root: Path) -> Targets:
    """Data, a trained fusion model, a small sweep and a sentence index under ``root``."""
    from omnifuse.data.builders import build
    from omnifuse.encoders import create
    from omnifuse.index import create_index
    from omnifuse.sweep import SweepConfig, run_sweep
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
    sweep = SweepConfig(
        data=str(digits / "manifest.jsonl"),
        target="label",
        fusions=["concat", "late-mean"],
        out=root / "experiments" / "sweep-digits",
        cache_dir=root / "sweep-cache",
        epochs=3,
        batch_size=16,
        dim=16,
        encoders=SMALL_ENCODERS,
        singles=["concat"],
        dropout_study=[],
        progress=False,
    )
    run_sweep(sweep)
    rows = [json.loads(line) for line in (digits / "manifest.jsonl").read_text().splitlines()]
    rows = [row for row in rows if row]
    texts = sentences(500, seed=3)
    vectors = create("minilm").encode(texts, batch_size=64).pooled.numpy()
    index = create_index("faiss-flat", root / "index", dim=vectors.shape[1])
    ids = [f"t{i}" for i in range(len(texts))]
    metadata = [
        {
            "source": t,
            "label": TOPICS[i % 4],
            "rank": i % 10,
            "image": f"digits/{rows[i % len(rows)]['image']}",
        }
        for i, t in enumerate(texts)
    ]
    index.add(ids, vectors, metadata)
    index.close()
    return Targets(digits=rows, items=ids)


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux ``/proc``), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def serve(root: Path, generator: Path | None) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [sys.executable, "-m", "omnifuse", "serve", "--port", str(port)]
    command += ["--models", str(root / "models"), "--index", str(root / "index")]
    command += ["--allowed-root", str(root / "allowed"), "--log-level", "warning", "--preload"]
    command += ["--experiments", str(root / "experiments"), "--allowed-host", ALLOWED_HOST]
    if generator is not None:
        command += ["--generator", str(generator)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def request_of(kind: str, rng: random.Random, targets: Targets) -> tuple[str, str, dict[str, Any]]:
    """Method, path and ``httpx`` arguments of one request of ``kind``."""
    if kind == "embeddings":
        body: dict[str, Any] = {"model": "minilm", "input": [f"request {rng.random():.6f}"]}
        return "POST", "/v1/embeddings", {"json": body}
    if kind == "predict":
        row = rng.choice(targets.digits)
        inputs = {"image": f"digits/{row['image']}", "audio": f"digits/{row['audio']}"}
        return "POST", "/v1/predict", {"json": {"model": MODEL_NAME, "inputs": inputs}}
    if kind == "search":
        query = {"query": f"a {rng.choice(['red', 'blue'])} circle", "k": 5}
        return "POST", "/v1/search", {"json": query | {"filter": {"label": rng.choice(TOPICS)}}}
    if kind == "item-image":
        params: dict[str, Any] = {"id": rng.choice(targets.items)}
        if rng.random() < 0.5:
            params["size"] = 32
        return "GET", "/v1/items/image", {"params": params}
    if kind == "experiments":
        return "GET", "/v1/experiments", {}
    if kind == "experiment":
        return "GET", f"/v1/experiments/{targets.experiment}", {}
    if kind == "plot":
        return "GET", f"/v1/experiments/{targets.experiment}/plots/{rng.choice(targets.plots)}", {}
    if kind == "speech":
        text = f"digit {rng.randrange(10)} was heard {rng.randrange(100)} times"
        return "POST", "/v1/audio/speech", {"json": {"input": text, "voice": "alloy"}}
    if kind == "generation":
        prompt = f"a {rng.choice(['red', 'blue', 'green'])} {rng.choice(['circle', 'square'])}"
        body = {"prompt": prompt, "steps": 4, "seed": rng.randrange(1000)}
        return "POST", "/v1/images/generations", {"json": body}
    if kind == "foreign-host":
        return "GET", "/v1/models", {"headers": {"Host": FOREIGN_HOST}}
    raise ValueError(f"unknown request kind {kind!r}")


def find_experiment(url: str) -> tuple[str, tuple[str, ...]]:
    """The id and plot names of the one experiment the server lists."""
    response = httpx.get(f"{url}/v1/experiments", headers={"Host": ALLOWED_HOST}, timeout=60)
    response.raise_for_status()
    (card,) = response.json()["data"]
    if not card["plots"]:
        raise RuntimeError(f"experiment {card['id']!r} has no plots")
    return str(card["id"]), tuple(card["plots"])


def touch_every_route(url: str, mix: dict[str, float], targets: Targets) -> None:
    """One request of each kind, one at a time; stops at the first unexpected status."""
    rng = random.Random(0)
    with httpx.Client(base_url=url, headers={"Host": ALLOWED_HOST}, timeout=300) as client:
        for kind in mix:
            method, path, arguments = request_of(kind, rng, targets)
            response = client.request(method, path, **arguments)
            if response.status_code != EXPECTED.get(kind, 200):
                raise RuntimeError(f"{kind}: {response.status_code} {response.text[:300]}")


async def sample_rss(pid: int, every: float, samples: list[float], stop_at: float) -> None:
    """The server's resident memory every ``every`` seconds until ``stop_at``."""
    while time.perf_counter() < stop_at:
        samples.append(rss_mib(pid))
        await asyncio.sleep(every)


async def run_clients(
    url: str,
    mix: dict[str, float],
    targets: Targets,
    clients: int,
    seconds: float,
    rss: tuple[int, list[float]] | None = None,
) -> tuple[dict[str, list[float]], dict[str, int], float]:
    """Latencies (s) and error counts by endpoint kind, and the elapsed time; with ``rss``
    (server pid, list) the server's memory is sampled every 10 s into the list."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    kinds, weights = list(mix), list(mix.values())
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Host": ALLOWED_HOST}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=60, limits=limits
    ) as client:

        async def worker(seed: int, stop_at: float) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < stop_at:
                kind = rng.choices(kinds, weights)[0]
                method, path, arguments = request_of(kind, rng, targets)
                started = time.perf_counter()
                try:
                    response = await client.request(method, path, **arguments)
                    ok = response.status_code == EXPECTED.get(kind, 200)
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
    parser.add_argument(
        "--generator",
        type=Path,
        default=GENERATOR,
        help="generator folder served for image generation (left out of the mix if missing)",
    )
    args = parser.parse_args()
    generator = args.generator if (args.generator / "config.json").is_file() else None
    mix = {k: w for k, w in MIX if generator is not None or k != "generation"}
    root = Path(tempfile.mkdtemp(prefix="omnifuse-load-"))
    try:
        setup_started = time.perf_counter()
        targets = prepare(root)
        with serve(root, generator) as (url, pid):
            targets.experiment, targets.plots = find_experiment(url)
            touch_every_route(url, mix, targets)
            setup = time.perf_counter() - setup_started
            asyncio.run(run_clients(url, mix, targets, args.clients, args.warmup))
            samples: list[float] = []
            latencies, errors, elapsed = asyncio.run(
                run_clients(url, mix, targets, args.clients, args.duration, (pid, samples))
            )
            samples.append(rss_mib(pid))
            before, after = samples[0], samples[-1]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = sum(mix.values())
    shares = ", ".join(f"{k} {100 * w / total:.2g}%" for k, w in mix.items())
    print(
        f"# load: {args.clients} clients for {elapsed:.1f} s (after {args.warmup:g} s warm-up), "
        f"Host {ALLOWED_HOST}; mix {shares}; "
        f"generator: {generator or 'none (image generation left out)'}; setup {setup:.0f} s\n"
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
