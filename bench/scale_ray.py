"""Ray Data batch encoding against the local engine, side by side in one process.

The same generated manifest is encoded into a fresh feature cache three ways in every round,
taking turns: by the local engine (this process), by Ray with 1 actor, and by Ray with 2 actors.
Each side keeps its median. The ratios are Ray with 1 actor against the local engine (goal
≥ 0.9: what Ray costs) and 2 actors against 1 (goal ≥ 1.7: how it scales).

Every timed run is a whole ``encode_manifest`` call: hashing the files, building the driver's
encoder (its fingerprint), starting the actors and building theirs, encoding, writing the shards.
The Ray instance is started once before the rounds (``ray.init`` on loopback with ``--cpus``
CPUs), as a running cluster would be. One torch thread per worker: the local engine runs with
``torch.set_num_threads(1)`` and each actor takes one CPU, for which Ray sets one thread. The
features of the first Ray run are compared with the local engine's (max |Δ|).

    python bench/scale_ray.py                          # about 10 minutes on 2 cores
    python bench/scale_ray.py --items 160 --rounds 1   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchkit import markdown_table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMNIFUSE_PROGRESS", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 only


def make_manifest(folder: Path, items: int, size: int) -> Path:
    """``items`` distinct JPEG images (smooth random colour fields) and their manifest."""
    from omnifuse.data.schema import ManifestSchema, write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(items):
        rng = np.random.default_rng(i)
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        image.save(folder / f"{i}.jpg", quality=90)
        rows.append({"id": f"i{i}", "image": f"{i}.jpg"})
    schema = ManifestSchema(modalities={"image": "image"}, id="id", split=None)
    write_manifest(folder / "images.jsonl", rows, schema)
    return folder / "images.jsonl"


def max_difference(a: Path, b: Path) -> float:
    from omnifuse.data.cache import FeatureCache

    left, right = FeatureCache(a), FeatureCache(b)
    assert sorted(left.keys("image")) == sorted(right.keys("image"))
    return max(
        float((left.get("image", k).pooled - right.get("image", k).pooled).abs().max())
        for k in left.keys("image")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="Images in the manifest.")
    parser.add_argument("--image-size", type=int, default=160, help="Generated image side.")
    parser.add_argument("--encoder", default="effnet-lite0", help="An image encoder.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds (median).")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray.")
    args = parser.parse_args()

    import ray

    from omnifuse.data.cache import encode_manifest
    from omnifuse.engines import LocalEngine
    from omnifuse.engines.ray_engine import RayEngine

    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="omnifuse-scale-ray-"))
    started = time.perf_counter()
    try:
        manifest = make_manifest(work / "data", args.items, args.image_size)
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR")
        sides: dict[str, Callable[[Path], object]] = {}
        for name, engine in (
            ("local", LocalEngine(1)),
            ("ray-1", RayEngine(workers=1)),
            ("ray-2", RayEngine(workers=2)),
        ):
            sides[name] = lambda out, engine=engine: encode_manifest(  # type: ignore[misc]
                manifest,
                {"image": args.encoder},
                out,
                batch_size=args.batch_size,
                shard_size=args.shard_size,
                engine=engine,
            )
        times: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            for name, run in sides.items():
                out = work / f"{name}-{round_}"
                start = time.perf_counter()
                run(out)
                times[name].append(time.perf_counter() - start)
                print(f"round {round_ + 1} {name}: {times[name][-1]:.1f} s", flush=True)
        delta = max_difference(work / "local-0", work / "ray-1-0")
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    median = {name: statistics.median(t) for name, t in times.items()}
    rows = [
        ["local (this process)", "1", f"{median['local']:.1f}",
         f"{args.items / median['local']:.1f}", "", ""],
        ["Ray Data actors", "1", f"{median['ray-1']:.1f}", f"{args.items / median['ray-1']:.1f}",
         f"{median['local'] / median['ray-1']:.2f} vs local", "≥ 0.9"],
        ["Ray Data actors", "2", f"{median['ray-2']:.1f}", f"{args.items / median['ray-2']:.1f}",
         f"{median['ray-1'] / median['ray-2']:.2f} vs 1 actor", "≥ 1.7"],
    ]  # fmt: skip
    head = ["engine", "workers", "median s", "items/s", "ratio", "goal"]
    print()
    print(markdown_table(head, rows, "lrrrrl"))
    print()
    print(
        f"{args.items} {args.image_size}x{args.image_size} JPEGs, {args.encoder}, batch "
        f"{args.batch_size}, shards of {args.shard_size}, {args.rounds} round(s); max |Δ| of the "
        f"pooled features, Ray against local: {delta:.2e}; Ray {ray.__version__}, torch "
        f"{torch.__version__}, {os.cpu_count()} CPUs ({platform.machine()}), 1-minute load "
        f"average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after (the run's own "
        f"processes count: about 2 while two actors work); "
        f"{time.perf_counter() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
