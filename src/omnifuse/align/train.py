"""``train_alignment``: cached features → projection heads in one space → a model folder.

Stage 1 (CLIP): for each pair of columns in ``pairs`` both heads learn, with a learnable logit
scale per pair, under the symmetric InfoNCE of :mod:`omnifuse.align.loss` (duplicate-aware
through ``data.group_by``). Stage 2 (ImageBind): each ``bind`` column learns its head against
its anchor's head, which stays frozen, so the bound modality lands in the space the anchor
already shares with the others: audio bound to text alone is retrievable from images.

Each stage runs AdamW with linear warmup and cosine decay, scores the validation split after
every epoch (mean reciprocal rank over the stage's retrieval directions), stops after
``patience`` epochs without improvement and keeps its best weights. Every epoch is a line of
``metrics.jsonl`` in the output folder.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse.align.batches import nearest_neighbours, neighbour_batches, random_batches
from omnifuse.align.config import AlignConfig, AlignTrain
from omnifuse.align.data import SplitData, load_training_data
from omnifuse.align.evaluate import direction, evaluate_split, retrieval_metrics, split_embeddings
from omnifuse.align.heads import HeadSpec
from omnifuse.align.loss import info_nce
from omnifuse.align.model import AlignedModel, ModalitySpec, save_aligned, scale_key
from omnifuse.encoders.base import resolve_device
from omnifuse.errors import ConfigError
from omnifuse.models.encoders import encoder_kind
from omnifuse.progress import track
from omnifuse.train.schedule import warmup_cosine
from omnifuse.train.trainer import seed_everything

LOG_FILE = "metrics.jsonl"
SELECTION_METRIC = "mrr"


@dataclass
class Stage:
    """One training stage: the column pairs of its loss and the columns whose heads learn."""

    name: str
    pairs: list[tuple[str, str]]
    trainable: list[str]
    epochs: int
    lr: float


@dataclass
class StageResult:
    name: str
    epochs: int
    best_epoch: int
    best_score: float
    stopped_early: bool
    seconds: float


@dataclass
class AlignResult:
    """What a run produced: the model (best weights), its folder, metrics and per-epoch log."""

    model: AlignedModel
    folder: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def stages(config: AlignConfig) -> list[Stage]:
    """Stage 1 over ``pairs``, then one binding stage per ``bind`` entry."""
    train = config.train
    pair_columns = list(dict.fromkeys(c for pair in config.pairs for c in pair))
    out = [
        Stage(
            "pairs",
            [(a, b) for a, b in config.pairs],
            [c for c in pair_columns if not config.head_config(c).locked],
            train.epochs,
            train.lr,
        )
    ]
    for binding in config.bind:
        out.append(
            Stage(
                f"bind:{binding.column}",
                [(binding.column, binding.anchor)],
                [binding.column],
                train.bind_epochs or train.epochs,
                train.bind_lr or train.lr,
            )
        )
    return out


def modality_specs(config: AlignConfig, dims: dict[str, int]) -> dict[str, ModalitySpec]:
    """Per modality (from each column's encoder): column, encoder entry and head shape."""
    specs: dict[str, ModalitySpec] = {}
    for column in config.columns:
        entry = dict(config.encoders[column])
        modality = encoder_kind(entry)
        if modality in specs:
            raise ConfigError(
                f"columns {specs[modality].column!r} and {column!r} are both {modality}; "
                "an aligned model has one head per modality"
            )
        entry.setdefault("seed", config.cache.seed)
        if config.cache.dtype != "fp32":
            entry.setdefault("dtype", config.cache.dtype)
        head = HeadSpec(input_dim=dims[column], **vars(config.head_config(column)))
        specs[modality] = ModalitySpec(column, entry, head)
    return specs


def build_aligned_model(
    config: AlignConfig, dims: dict[str, int], device: str | torch.device = "cpu"
) -> AlignedModel:
    """A freshly initialised model (seeded by ``train.seed``) for ``config``'s columns."""
    torch.manual_seed(config.train.seed)
    scales = [scale_key(a, b) for stage in stages(config) for a, b in stage.pairs]
    return AlignedModel(
        modality_specs(config, dims),
        scales,
        temperature=config.train.temperature,
        learn_temperature=config.train.learn_temperature,
        device=device,
    )


def train_alignment(config: AlignConfig, out: str | Path | None = None) -> AlignResult:
    """Encode (once), train every stage, evaluate retrieval on val and test, save the folder."""
    started = time.perf_counter()
    folder = Path(out or config.output or "")
    if not str(folder) or folder == Path():
        raise ConfigError("give an output folder (out=..., or 'output' in the config)")
    seed_everything(config.train.seed)
    manifest_path, splits = load_training_data(config, folder)
    model, results, history = fit_model(config, splits, folder)
    metrics: dict[str, Any] = {
        "data": {"manifest": str(manifest_path), **{k: len(v) for k, v in splits.items()}},
        "train": {
            "stages": [vars(r) for r in results],
            "logit_scales": {k: model.logit_scale(k) for k in model.scales},
            "seconds": round(time.perf_counter() - started, 2),
        },
    }
    for role in ("val", "test"):
        if role in splits:
            metrics[role] = evaluate_split(model, splits[role])
    save_aligned(model, folder, metrics=metrics, extra={"config": config.to_dict()})
    return AlignResult(model, folder, metrics, history, time.perf_counter() - started)


def fit_model(
    config: AlignConfig, splits: dict[str, SplitData], folder: Path
) -> tuple[AlignedModel, list[StageResult], list[dict[str, Any]]]:
    """A new model trained through every stage on loaded splits; the epochs are logged to
    ``folder/metrics.jsonl``. Returns the model, each stage's result and the epoch log."""
    dims = {c: int(f.pooled.shape[1]) for c, f in splits["train"].features.items()}
    model = build_aligned_model(config, dims, resolve_device(config.train.device))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOG_FILE).write_text("", encoding="utf-8")
    history: list[dict[str, Any]] = []
    results = [
        fit_stage(model, stage, splits["train"], splits.get("val"), config.train, folder, history)
        for stage in stages(config)
    ]
    return model, results, history


def _batches(
    stage: Stage,
    data: SplitData,
    train: AlignTrain,
    rng: np.random.Generator,
    cache: dict[str, Any],
) -> list[np.ndarray]:
    """This epoch's batches: shuffled, or neighbourhoods of the anchor's frozen features."""
    if train.hard_negatives != "neighbours":
        return random_batches(len(data), train.batch_size, rng)
    if "neighbours" not in cache:
        anchor = stage.pairs[0][1]
        cache["neighbours"] = nearest_neighbours(data.features[anchor].pooled, 4 * train.neighbours)
    return neighbour_batches(cache["neighbours"], train.batch_size, train.neighbours, rng)


def _stage_loss(
    model: AlignedModel,
    stage: Stage,
    data: SplitData,
    index: np.ndarray,
    hard_beta: float,
) -> torch.Tensor:
    embedded: dict[str, torch.Tensor] = {}
    for column in {c for pair in stage.pairs for c in pair}:
        modality = model.modality_of(column)
        pooled, tokens, mask = data.features[column].batch(index.tolist())
        with torch.set_grad_enabled(column in stage.trainable):
            embedded[column] = model.project(modality, pooled, tokens, mask)
    groups = data.groups[torch.as_tensor(index)].to(model.device)
    losses = [
        info_nce(
            embedded[a],
            embedded[b],
            model.scales[scale_key(a, b)](),
            groups=groups,
            hard_beta=hard_beta,
        )
        for a, b in stage.pairs
    ]
    return torch.stack(losses).mean()


def _parameters(model: AlignedModel, stage: Stage) -> list[dict[str, Any]]:
    heads = [
        p
        for c in stage.trainable
        for p in model.heads[model.modality_of(c)].parameters()
        if p.requires_grad
    ]
    scales = [
        p
        for a, b in stage.pairs
        for p in model.scales[scale_key(a, b)].parameters()
        if p.requires_grad
    ]
    groups: list[dict[str, Any]] = [{"params": heads}]
    if scales:
        groups.append({"params": scales, "weight_decay": 0.0})
    return groups


def _set_modes(model: AlignedModel, stage: Stage) -> None:
    """Learning heads in train mode (dropout), every other head in eval mode."""
    model.eval()
    for column in stage.trainable:
        model.heads[model.modality_of(column)].train()


def validation_score(model: AlignedModel, stage: Stage, data: SplitData) -> float:
    """Mean MRR over both directions of each of the stage's pairs."""
    modality = model.modality_of
    pairs = [(modality(a), modality(b)) for a, b in stage.pairs]
    embeddings = split_embeddings(model, data, modalities=sorted({m for p in pairs for m in p}))
    directions = pairs + [(b, a) for a, b in pairs]
    report = retrieval_metrics(embeddings, data.group_keys, directions=directions)
    return float(np.mean([report[direction(q, g)][SELECTION_METRIC] for q, g in directions]))


def fit_stage(
    model: AlignedModel,
    stage: Stage,
    train_data: SplitData,
    val_data: SplitData | None,
    train: AlignTrain,
    folder: Path,
    history: list[dict[str, Any]],
) -> StageResult:
    """Train one stage in place; the model ends with the stage's best validation weights."""
    started = time.perf_counter()
    if not stage.trainable:
        raise ConfigError(f"stage {stage.name}: every head is locked; nothing to train")
    rng = np.random.default_rng([train.seed, len(history)])
    optimizer = torch.optim.AdamW(
        _parameters(model, stage), lr=stage.lr, weight_decay=train.weight_decay
    )
    cache: dict[str, Any] = {}
    steps_per_epoch = len(_batches(stage, train_data, train, np.random.default_rng(0), cache))
    total = stage.epochs * steps_per_epoch
    warmup = round(train.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total, warmup)
    )
    hard_beta = train.hard_beta if train.hard_negatives == "in-batch" else 0.0
    best = (-math.inf, 0, copy.deepcopy(model.state_dict()))
    epoch = 0
    for epoch in track(range(1, stage.epochs + 1), f"align {stage.name}"):
        _set_modes(model, stage)
        losses = []
        for index in _batches(stage, train_data, train, rng, cache):
            loss = _stage_loss(model, stage, train_data, index, hard_beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        model.eval()
        score = (
            validation_score(model, stage, val_data)
            if val_data is not None and len(val_data) > 1
            else -float(np.mean(losses))
        )
        row = {
            "stage": stage.name,
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            f"val_{SELECTION_METRIC}": score if val_data is not None else None,
            "logit_scale": {f"{a}|{b}": model.logit_scale(scale_key(a, b)) for a, b in stage.pairs},
            "lr": scheduler.get_last_lr()[0],
            "seconds": round(time.perf_counter() - started, 3),
        }
        history.append(row)
        with (folder / LOG_FILE).open("a", encoding="utf-8") as log:
            log.write(json.dumps(row) + "\n")
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= train.patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    return StageResult(
        stage.name,
        epoch,
        best[1],
        best[0],
        epoch < stage.epochs,
        round(time.perf_counter() - started, 2),
    )
