"""Overhead of the one training loop (``omnifuse.train.loop.fit``) against bare PyTorch loops,
in one run.

Fusion rows: ``omnifuse.train.train`` and a hand-written loop train the same fusion model from
the same initial weights on the same batches of cached-style features (a synthetic set shaped
like av-digits: 40 audio tokens of 384 features, 9 image tokens of 1280), with the same optimizer
(AdamW, weight decay on matrices only), warmup-cosine schedule, gradient clipping and number of
steps; the bare loop is a ``DataLoader`` with ``collate_cached``, forward, the model's loss,
backward, clip, step. The ``aligner`` row runs one CLIP stage of :mod:`omnifuse.align`
(``fit_stage``, which writes ``metrics.jsonl`` and TensorBoard events as every alignment does)
against the same stage written by hand; the ``projector`` row trains a soft prompt into a frozen
built-in decoder (``omnifuse.projector.train.fit``) against a hand-written loop (see
``train_parts.py``). After one untimed warm-up pair, runs alternate (loop, bare, loop, bare, ...)
and each side keeps its median time per optimizer step; the ratio loop / bare is the loop's
overhead (goal ≤ 1.1×). Both sides of a row see the same random numbers in the same order, so
their final weights must agree: ``Δweights`` is the largest difference.

    python bench/train.py                      # about four minutes on 2 cores
    python bench/train.py --fusions concat --rounds 2 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from omnifuse.data.cache import CachedSample, collate_cached
from omnifuse.models import FusionModel, ModelConfig, build_model
from omnifuse.train import TrainConfig, train
from omnifuse.train.schedule import warmup_cosine
from train_parts import Row, align_row, compare, epoch_batches, projector_row

DIMS = {"audio": 384, "image": 1280}
TOKENS = {"audio": 40, "image": 9}
CLASSES = [str(i) for i in range(10)]


class SyntheticFeatures(Dataset[CachedSample]):
    """Labelled samples with token and pooled features per modality, fixed by a seed."""

    def __init__(self, size: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, len(CLASSES), (size,), generator=g)
        centres = {m: torch.randn(len(CLASSES), d, generator=g) for m, d in DIMS.items()}
        self.samples = []
        for i in range(size):
            features = {}
            for m, d in DIMS.items():
                tokens = centres[m][self.labels[i]] + 2.0 * torch.randn(TOKENS[m], d, generator=g)
                features[m] = (tokens.half(), tokens.mean(0))
            present = dict.fromkeys(DIMS, True)
            self.samples.append(CachedSample(features, present, self.labels[i], f"s{i}"))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> CachedSample:
        return self.samples[index]


def new_model(fusion: str, state: dict[str, torch.Tensor] | None = None) -> FusionModel:
    config = ModelConfig(modalities=dict(DIMS), fusion=fusion, classes=list(CLASSES))
    model = build_model(config)
    if state is not None:
        model.load_state_dict(state)
    return model


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        weight_decay=0.01,
        warmup_ratio=0.05,
        grad_clip=1.0,
        patience=None,
        seed=args.seed,
        progress=False,
        device="cpu",
    )


def run_trainer(model: FusionModel, data: Dataset[CachedSample], config: TrainConfig) -> int:
    return train(model, data, None, config).steps


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, object]]:
    """AdamW groups: weight decay on weight matrices, none on biases and norms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": rest, "weight_decay": 0.0},
        {"params": decay, "weight_decay": config.weight_decay},
    ]


def run_bare(model: FusionModel, data: Dataset[CachedSample], config: TrainConfig) -> int:
    """The hand-written loop: same batches, optimizer, schedule and clipping as the trainer."""
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
    steps_per_epoch = math.ceil(len(data) / config.batch_size)  # type: ignore[arg-type]
    total = steps_per_epoch * config.epochs
    warmup = round(config.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total, warmup)
    )
    step = 0
    for epoch in range(config.epochs):
        model.train()
        for batch in epoch_batches(data, config.batch_size, collate_cached, config.seed, epoch):
            out = model(batch.features, batch.present)
            loss = model.loss(out, batch.labels, batch.present)  # cross-entropy (+ aux heads)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf)
            optimizer.step()
            schedule.step()
            step += 1
    return step


def fusion_row(fusion: str, data: Dataset[CachedSample], args: argparse.Namespace) -> Row:
    config = train_config(args)
    torch.manual_seed(args.seed)
    initial = {k: v.clone() for k, v in new_model(fusion).state_dict().items()}
    runs = {
        "trainer": lambda m: run_trainer(m, data, config),
        "bare": lambda m: run_bare(m, data, config),
    }
    return compare(fusion, lambda: new_model(fusion, initial), runs, args.rounds)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fusions", default="concat,late-mean,transformer")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = SyntheticFeatures(args.samples, seed=args.seed)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
        f"{args.samples} samples, batch {args.batch_size}, {args.epochs} epochs, "
        f"{args.rounds} alternating rounds (median ms/step)"
    )
    print(f"{'model':14s} {'steps':>6s} {'loop':>9s} {'bare':>9s} {'ratio':>7s} {'Δweights':>9s}")
    rows = [fusion_row(f.strip(), data, args) for f in args.fusions.split(",") if f.strip()]
    rows += [align_row(args), projector_row(args)]
    for row in rows:
        print(
            f"{row.name:14s} {row.steps:6d} {row.trainer_ms:8.2f}  {row.bare_ms:8.2f} "
            f"{row.ratio:6.3f}× {row.max_weight_diff:9.2e}"
        )


if __name__ == "__main__":
    main()


def train_synthetic(
    args: argparse.Namespace, *, device: str = "cpu", bf16: bool = False
) -> tuple[FusionModel, Any]:
    """``args.fusion`` trained on ``args.samples`` synthetic samples (seed 0) through
    ``omnifuse.train.train``: the worker run of the scale-out benches."""
    data = SyntheticFeatures(args.samples, seed=0)
    torch.manual_seed(0)
    model = new_model(args.fusion)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=None,
        progress=False,
        device=device,
        bf16=bf16,
    )
    return model, train(model, data, None, config)


def write_epoch_report(path: Path, result: Any) -> None:
    """The epochs' time (not start-up, data or optimizer set-up) and the steps, as JSON."""
    seconds = sum(record["seconds"] for record in result.history)
    path.write_text(json.dumps({"seconds": seconds, "steps": result.steps}))
