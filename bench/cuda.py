"""The CUDA path of the training loop, for a machine with GPUs: bf16 autocast against fp32 on one
GPU, and NCCL data parallelism across every GPU there is, in one run.

Rows (median ms per optimizer step over ``--rounds`` alternating rounds, training only, the
transformer fusion of bench/train.py on its av-digits-shaped synthetic features):

- fp32 and bf16 autocast on one GPU, side by side;
- with more than one GPU: ``torch.distributed.run`` with one process per GPU (NCCL) against one
  process on one GPU, the same global batch.

    python bench/cuda.py                 # prints "no CUDA device" and exits 0 without a GPU
    python bench/cuda.py --rounds 2 --epochs 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch

from benchkit import ms_per_step

HERE = Path(__file__).resolve()


def worker(args: argparse.Namespace) -> None:
    """One training run on CUDA (one of several processes under torchrun, one per GPU)."""
    from omnifuse.train import distributed
    from train import train_synthetic, write_epoch_report

    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    _, result = train_synthetic(args, device=f"cuda:{local}", bf16=args.bf16)
    torch.cuda.synchronize()
    if distributed.is_main():
        write_epoch_report(Path(args.worker), result)
    distributed.shutdown()


def timed(args: argparse.Namespace, out: Path, *, gpus: int, bf16: bool) -> float:
    arguments = ["--fusion", args.fusion, "--epochs", str(args.epochs)]
    arguments += ["--samples", str(args.samples), "--batch-size", str(args.batch_size)]
    arguments += ["--bf16"] if bf16 else []
    return ms_per_step(HERE, out, arguments, processes=gpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fusion", default="transformer")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure here (run on a machine with a GPU)")
        return
    gpus = torch.cuda.device_count()
    folder = Path(tempfile.mkdtemp(prefix="bench-cuda-"))
    sides = {"fp32, 1 GPU": (1, False), "bf16, 1 GPU": (1, True)}
    if gpus > 1:
        sides[f"bf16, {gpus} GPUs (NCCL)"] = (gpus, True)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(args.rounds + 1):
        for name, (count, bf16) in sides.items():
            ms = timed(args, folder / "run.json", gpus=count, bf16=bf16)
            if round_ > 0:
                times[name].append(ms)
    print(f"{torch.cuda.get_device_name(0)} × {gpus}, torch {torch.__version__}")
    print(f"{args.fusion}: {args.samples} samples, global batch {args.batch_size}")
    base = statistics.median(times["fp32, 1 GPU"])
    print("| run | ms/step | speed-up |")
    print("|---|---:|---:|")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"| {name} | {ms:.2f} | {base / ms:.2f}× |")


if __name__ == "__main__":
    main()
