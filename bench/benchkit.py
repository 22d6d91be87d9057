"""What the benchmark scripts share: the alternating timer, generated sentences, a loopback
``omnifuse serve`` to wait for, and the Markdown table every script prints.

The scripts run as ``python bench/NAME.py``, which puts this folder first on ``sys.path``, so they
import this module by its bare name.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def alternate(
    a: Callable[[], Any], b: Callable[[], Any], rounds: int
) -> tuple[float, float, Any, Any]:
    """Median seconds of ``a`` and ``b`` run alternately ``rounds`` times after one warm-up call
    each, and the warm-up outputs. Taking turns puts drift in clock speed or caches on both."""
    out_a, out_b = a(), b()
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(rounds):
        for fn, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b), out_a, out_b


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` scene descriptions of one to three coloured shapes, different lengths, seeded."""
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    shapes = ["circle", "square", "triangle", "star"]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        parts = [f"a {rng.choice(colours)} {rng.choice(shapes)}" for _ in range(k)]
        out.append(f"scene {i}: " + " to the left of ".join(parts) + " on a plain background")
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    """Poll ``/healthz`` of a server started as ``process`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the server did not start")


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> str:
    """A Markdown table; ``align`` has one letter a column, ``l`` (text) or ``r`` (numbers)."""
    if len(align) != len(head):
        raise ValueError(f"{len(head)} columns but alignment {align!r}")
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    lines = ["| " + " | ".join(head) + " |", rule]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms_per_step(
    script: Path, out: Path, arguments: Sequence[str], *, processes: int, threads: str = "1"
) -> float:
    """Run ``script --worker OUT ARGUMENTS`` (under ``torch.distributed.run`` with
    ``processes`` processes when more than one) and read the training time per step that its
    rank 0 wrote to ``out`` as ``{"seconds", "steps"}``."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OMNIFUSE_PROGRESS": "0"}
    command = [*launcher, str(script), "--worker", str(out), *arguments]
    subprocess.run(command, check=True, env=env, cwd=script.parent, capture_output=True)
    report = json.loads(out.read_text())
    return float(report["seconds"]) / int(report["steps"]) * 1000.0
