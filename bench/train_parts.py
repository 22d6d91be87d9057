"""The side-by-side comparison of ``bench/train.py`` and its aligner and projector rows: the
training loop (:func:`omnifuse.train.fit` through each pipeline's objective) against the loop a
user would write by hand for the same model, batches, optimizer and schedule."""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from omnifuse.align.batches import random_batches
from omnifuse.align.config import AlignTrain
from omnifuse.align.data import ColumnFeatures, SplitData
from omnifuse.align.heads import HeadSpec
from omnifuse.align.model import AlignedModel, ModalitySpec, scale_key
from omnifuse.align.train import Stage, _parameters, _set_modes, _stage_loss, fit_stage
from omnifuse.data.cache import CachedSample
from omnifuse.projector.config import ProjectorTrainConfig
from omnifuse.projector.data import TextSample, collate_projector
from omnifuse.projector.decoder import DecoderConfig, DecoderLM, WordTokenizer
from omnifuse.projector.lm import BuiltinLM
from omnifuse.projector.model import ProjectorLM, SoftPrompt
from omnifuse.projector.train import batch_loss, fit
from omnifuse.train.schedule import warmup_cosine


@dataclass
class Row:
    name: str
    steps: int
    trainer_ms: float
    bare_ms: float
    max_weight_diff: float

    @property
    def ratio(self) -> float:
        return self.trainer_ms / self.bare_ms


def compare(
    name: str, make: Callable[[], Any], runs: dict[str, Callable[[Any], int]], rounds: int
) -> Row:
    """Alternate the loop and the bare side ``rounds`` times (after one warm-up pair), each on a
    fresh copy from the same initial weights; median ms per optimizer step of each side, and the
    largest difference of their final weights."""
    times: dict[str, list[float]] = {side: [] for side in runs}
    finals: dict[str, dict[str, torch.Tensor]] = {}
    steps = 0
    for round_ in range(rounds + 1):
        for side, run in runs.items():
            model = make()
            started = time.perf_counter()
            steps = run(model)
            if round_ > 0:  # round 0 warms up (imports, allocator, thread pools)
                times[side].append((time.perf_counter() - started) / steps * 1000.0)
            finals[side] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    a, b = finals["trainer"], finals["bare"]
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    trainer, bare = statistics.median(times["trainer"]), statistics.median(times["bare"])
    return Row(name, steps, trainer, bare, diff)


def epoch_batches(
    data: Any, batch_size: int, collate: Callable[[list[Any]], Any], seed: int, epoch: int
) -> DataLoader[Any]:
    """One epoch's shuffled batches in the order the training loop draws them (its generator
    seeded from the run's seed and the epoch), so a bare loop sees the very same batches."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(
        data, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator
    )


# --- the aligner: one CLIP stage over synthetic paired features -------------------------------

ALIGN_DIMS = {"t": 384, "i": 1280}


def align_split(count: int, seed: int) -> SplitData:
    """Two views of one latent code, shaped like MiniLM text and EfficientNet image features."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(count, 32, generator=g)
    features = {
        c: ColumnFeatures(
            latent @ torch.randn(32, d, generator=g) + torch.randn(count, d, generator=g)
        )
        for c, d in ALIGN_DIMS.items()
    }
    names = [f"r{i}" for i in range(count)]
    return SplitData(names, torch.arange(count), names, [{} for _ in names], features)


def align_model(seed: int) -> AlignedModel:
    torch.manual_seed(seed)
    kinds = {"t": "text", "i": "image"}
    specs = {
        kinds[c]: ModalitySpec(
            c, {"name": "unused"}, HeadSpec(input_dim=d, dim=256, hidden=512, dropout=0.1)
        )
        for c, d in ALIGN_DIMS.items()
    }
    return AlignedModel(specs, [scale_key("t", "i")])


def align_row(args: argparse.Namespace) -> Row:
    data = align_split(args.samples, args.seed)
    stage = Stage("pairs", [("t", "i")], ["t", "i"], epochs=args.epochs, lr=1e-3)
    settings = AlignTrain(batch_size=args.batch_size, patience=None, progress=False, seed=args.seed)
    folder = Path(tempfile.mkdtemp(prefix="bench-align-"))

    def loop(model: AlignedModel) -> int:
        return fit_stage(model, stage, data, None, settings, folder, []).epochs * steps_per(data)

    def bare(model: AlignedModel) -> int:
        torch.manual_seed(settings.seed)
        optimizer = torch.optim.AdamW(
            _parameters(model, stage), lr=stage.lr, weight_decay=settings.weight_decay
        )
        total = stage.epochs * steps_per(data)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: warmup_cosine(s, total, round(settings.warmup_ratio * total))
        )
        rng = np.random.default_rng([settings.seed, 0])
        for _ in range(stage.epochs):
            _set_modes(model, stage)
            for index in random_batches(len(data), settings.batch_size, rng):
                loss = _stage_loss(model, stage, data, index, 0.0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        return total

    def steps_per(split: SplitData) -> int:
        return len(random_batches(len(split), settings.batch_size, np.random.default_rng(0)))

    return compare(
        "aligner", lambda: align_model(args.seed), {"trainer": loop, "bare": bare}, args.rounds
    )


# --- the projector: a soft prompt into the built-in decoder, on synthetic features ------------

PROJ_DIM, PROJ_TOKENS, VOCAB = 384, 9, 40


def projector_items(count: int, seed: int) -> list[tuple[CachedSample, TextSample]]:
    """Token features and a six-word target per sample, the words a function of the features."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(count):
        tokens = torch.randn(PROJ_TOKENS, PROJ_DIM, generator=g)
        words = [4 + int(w) % (VOCAB - 4) for w in (tokens[:6, 0] * 10).tolist()]
        sample = CachedSample({"image": (tokens, tokens.mean(0))}, {"image": True}, None, f"s{i}")
        text = TextSample("", " ".join(map(str, words)), [], words, None)
        items.append((sample, text))
    return items


def projector_model(seed: int) -> ProjectorLM:
    torch.manual_seed(seed)
    vocab = ["<pad>", "<unk>", "<bos>", "<eos>", *(f"w{i}" for i in range(VOCAB - 4))]
    decoder = DecoderLM(DecoderConfig(vocab_size=VOCAB, dim=128, layers=2, heads=4)).eval()
    for parameter in decoder.parameters():
        parameter.requires_grad_(False)
    lm = BuiltinLM(decoder, WordTokenizer(vocab))
    prompt = SoftPrompt({"image": PROJ_DIM}, lm.embed_dim, tokens={"image": 8}, kind="mlp2")
    return ProjectorLM(lm, prompt)


def projector_row(args: argparse.Namespace) -> Row:
    items = projector_items(args.samples // 2, args.seed)
    config = ProjectorTrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, progress=False, threads=None
    )
    steps = math.ceil(len(items) / config.batch_size) * config.epochs

    def loop(model: ProjectorLM) -> int:
        fit(model, items, None, config)  # type: ignore[arg-type]
        return steps

    def bare(model: ProjectorLM) -> int:
        torch.manual_seed(config.seed)
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=config.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: warmup_cosine(s, steps, round(config.warmup_ratio * steps))
        )
        device = torch.device("cpu")
        for epoch in range(config.epochs):
            model.train()
            for batch in epoch_batches(
                items, config.batch_size, collate_projector, config.seed, epoch
            ):
                loss = batch_loss(model, batch, device)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, config.grad_clip or math.inf)
                optimizer.step()
                schedule.step()
        return steps

    def make() -> ProjectorLM:
        return projector_model(args.seed)

    return compare("projector", make, {"trainer": loop, "bare": bare}, args.rounds)
