"""Data-parallel training: 2 processes × 1 thread against 1 process × 1 thread, in one run.

Both sides train the same transformer fusion (bench/train.py's av-digits-shaped synthetic
features, global batch 64) through ``omnifuse.train.train``: one side as a plain process, the
other as two gloo processes under ``torch.distributed.run``, each on half of every global batch.
Each run reports the time of its epochs (not the start-up, data loading or optimizer set-up),
the two sides alternate for ``--rounds`` rounds after a warm-up pair, and the ratio of the
medians is the speed-up (goal ≥ 1.7×). ``Δweights`` is the largest difference of the final
weights: ~1e-8 but for the attention key biases, whose gradient is zero in exact arithmetic, so
Adam turns float noise there into steps of the learning rate's size.

    python bench/scale_ddp.py                    # about 4 minutes on 2 cores
    python bench/scale_ddp.py --rounds 2 --epochs 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from benchkit import ms_per_step

HERE = Path(__file__).resolve()


def worker(args: argparse.Namespace) -> None:
    """Train once (under torchrun, as one of several processes) and let rank 0 report."""
    from safetensors.torch import save_file

    from omnifuse.models.folder import model_state
    from omnifuse.train import distributed
    from train import train_synthetic, write_epoch_report

    torch.set_num_threads(1)
    model, result = train_synthetic(args)
    if distributed.is_main():
        out = Path(args.worker)
        save_file(model_state(model), str(out.with_suffix(".safetensors")))
        write_epoch_report(out, result)
    distributed.shutdown()


def timed_run(processes: int, args: argparse.Namespace, out: Path) -> float:
    arguments = ["--fusion", args.fusion, "--epochs", str(args.epochs)]
    arguments += ["--samples", str(args.samples), "--batch-size", str(args.batch_size)]
    return ms_per_step(HERE, out, arguments, processes=processes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fusion", default="transformer")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from safetensors.torch import load_file

    folder = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    times: dict[int, list[float]] = {1: [], 2: []}
    for round_ in range(args.rounds + 1):
        for processes in (1, 2):
            ms = timed_run(processes, args, folder / f"p{processes}.json")
            if round_ > 0:  # round 0 warms the file cache and the allocator
                times[processes].append(ms)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    a, b = load_file(str(folder / "p1.safetensors")), load_file(str(folder / "p2.safetensors"))
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(
        f"{args.fusion}: {args.samples} samples, global batch {args.batch_size}, "
        f"{args.epochs} epochs, {args.rounds} alternating rounds (median ms/step, training only)"
    )
    print("| processes × threads | ms/step | speed-up | Δweights |")
    print("|---|---:|---:|---:|")
    print(f"| 1 × 1 | {one:.1f} | 1.00× | |")
    print(f"| 2 × 1 (gloo) | {two:.1f} | {one / two:.2f}× | {diff:.1e} |")


if __name__ == "__main__":
    main()
