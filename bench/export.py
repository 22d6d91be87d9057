"""Lightweight deployment on real features: every fusion exported to ONNX and quantised to int8,
and a distilled student against its teacher — all on one sweep's cached test split.

For each fusion (trained as the sweep trains it: same data, seed and budget), in this process:

- **ONNX**: max |Δ| of the logits between torch and onnxruntime over the whole test split (every
  sample with its own missing modalities), and the latency ratio torch / onnxruntime at batch 1
  and at batch 64, the two run alternately (``benchkit.alternate``);
- **int8** (onnxruntime dynamic quantisation): test accuracy against fp32 torch, and the
  speed-up of the int8 graph over the fp32 graph and over torch;
- **distillation**: a concat student trained on the teacher's soft labels (``--teacher``,
  default the transformer) against the teacher and against the same concat trained on labels.

    python bench/export.py                                   # av-digits-sweep, every fusion
    python bench/export.py --sweep world-sensors --out runs/sweep-world-sensors

One thread each by default (``--threads``): small graphs gain nothing from more, and a single
thread keeps the alternating timings steady on a shared machine.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from benchkit import alternate, markdown_table
from omnifuse.eval.inference import predict, prepare_batches
from omnifuse.export import ExportError, export_onnx, quantize_int8
from omnifuse.fusion import list_fusions
from omnifuse.models.folder import load_model
from omnifuse.sweep import read_sweep_config
from omnifuse.sweep.config import fused_strategy
from omnifuse.sweep.data import prepare_data
from omnifuse.sweep.run import model_config, reads_tokens, train_strategy
from omnifuse.train import train
from omnifuse.train.distill import Distillation


def accuracy(model: torch.nn.Module, test: list) -> float:
    out = predict(model, test)
    return float((out.logits.argmax(1) == out.labels).float().mean())


def check_batches(model: torch.nn.Module, test: list) -> list:
    pairs = []
    for batch in test:
        features, present = model.inputs_of(batch)
        pairs.append((features, present))
    return pairs


def forward(model: torch.nn.Module, inputs: tuple) -> torch.Tensor:
    with torch.inference_mode():
        return model(*inputs).logits


def one_fusion(name: str, config, data, tmp: Path, rounds: int, threads: int) -> list[str]:
    """Train one fusion, export and quantise it; its row of the table."""
    model, _, _ = train_strategy(fused_strategy(name, config), data, config)
    torch.set_num_threads(threads)  # encoding and training set their own
    model.eval()
    split = data.splits if reads_tokens(model) else data.pooled
    test = prepare_batches(split["test"], batch_size=64)
    info = export_onnx(model, tmp / name, check=check_batches(model, test))
    quantize_int8(tmp / name, tmp / f"{name}-int8")
    fp32, int8 = load_model(tmp / name), load_model(tmp / f"{name}-int8")
    one = model.inputs_of(prepare_batches(split["test"], batch_size=1)[0])
    full = model.inputs_of(test[0])
    t1, o1, _, _ = alternate(lambda: forward(model, one), lambda: forward(fp32, one), rounds)
    tb, ob, _, _ = alternate(lambda: forward(model, full), lambda: forward(fp32, full), rounds)
    f1, q1, _, _ = alternate(lambda: forward(fp32, one), lambda: forward(int8, one), rounds)
    fb, qb, _, _ = alternate(lambda: forward(fp32, full), lambda: forward(int8, full), rounds)
    torch_acc, int8_acc = accuracy(model, test), accuracy(int8, test)
    return [
        name, f"{info.max_abs_diff:.1e}", f"{1e3 * t1:.3f} / {1e3 * o1:.3f}", f"{t1 / o1:.2f}",
        f"{1e3 * tb:.3f} / {1e3 * ob:.3f} / {1e3 * qb:.3f}", f"{tb / ob:.2f}",
        f"{torch_acc:.3f}", f"{int8_acc:.3f}", f"{100 * (int8_acc - torch_acc):+.1f}",
        f"{f1 / q1:.2f}", f"{fb / qb:.2f}",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", default="av-digits-sweep", help="sweep recipe or data name")
    parser.add_argument("--fusions", default="all")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--teacher", default="transformer")
    parser.add_argument("--out", type=Path, default=None, help="sweep folder (its cache)")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = [f"out={args.out}"] if args.out else []
    try:
        config = read_sweep_config(args.sweep, overrides, {})
    except Exception:
        config = read_sweep_config(None, overrides, {"data": args.sweep})
    config.progress = False
    data = prepare_data(config)
    names = list_fusions() if args.fusions == "all" else args.fusions.split(",")
    rows, failed = [], []
    threads = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                rows.append(one_fusion(name, config, data, Path(tmp), args.rounds, args.threads))
            except ExportError as err:
                failed.append(f"{name}: {err}")
                continue
            print(" | ".join(rows[-1]), flush=True)
    print(f"\n{config.data}: torch {threads} threads, onnxruntime the same; batch 64 = test[0]\n")
    head = [
        "fusion", "max |Δ| (test)", "ms b1 torch / ORT", "torch/ORT b1",
        "ms b64 torch / ORT / int8", "torch/ORT b64", "acc torch", "acc int8", "Δ pts",
        "fp32/int8 b1", "fp32/int8 b64",
    ]  # fmt: skip
    print(markdown_table(head, rows, "l" + "r" * 10))
    for line in failed:
        print("not exported:", line)
    distil(config, data, args.teacher, args.threads)


def distil(config, data, teacher_name: str, threads: int) -> None:
    teacher, _, _ = train_strategy(fused_strategy(teacher_name, config), data, config)
    teacher.eval()
    tokens = reads_tokens(teacher)
    split = data.splits if tokens else data.pooled
    test = prepare_batches(split["test"], batch_size=64)
    student_strategy = fused_strategy("concat", config)
    baseline, _, _ = train_strategy(student_strategy, data, config)
    from omnifuse.models import build_model

    torch.manual_seed(config.seed)
    student = build_model(model_config(student_strategy, data, config.spec.target))
    train(student, split["train"], split["val"], config.train_config(),
          distillation=Distillation(teacher, temperature=2.0, alpha=0.5))  # fmt: skip
    student.eval()
    torch.set_num_threads(threads)
    full = teacher.inputs_of(test[0])
    teacher_s, student_s, _, _ = alternate(
        lambda: forward(teacher, full), lambda: forward(student, full), 30
    )
    print(
        f"\ndistillation ({config.data}, T=2, alpha=0.5): teacher {teacher_name} "
        f"{accuracy(teacher, test):.3f}, distilled concat {accuracy(student, test):.3f}, "
        f"concat on labels {accuracy(baseline, test):.3f}; latency teacher/student at batch "
        f"{full[1].shape[0]}: {teacher_s / student_s:.1f}x"
    )


if __name__ == "__main__":
    main()
