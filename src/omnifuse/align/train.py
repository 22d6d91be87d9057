"""``train_alignment``: cached features → projection heads in one space → a model folder.

Stage 1 (CLIP): for each pair of columns in ``pairs`` both heads learn, with a learnable logit
scale per pair, under the symmetric InfoNCE of :mod:`omnifuse.align.loss` (duplicate-aware
through ``data.group_by``). Stage 2 (ImageBind): each ``bind`` column learns its head against
its anchor's head, which stays frozen, so the bound modality lands in the space the anchor
already shares with the others: audio bound to text alone is retrievable from images.

Each stage goes through the one training loop (:func:`omnifuse.train.loop.fit`): AdamW with
linear warmup and cosine decay, the validation split scored after every epoch (mean reciprocal
rank over the stage's retrieval directions), early stopping after ``patience`` epochs without
improvement with the best weights kept. Every epoch is a line of ``metrics.jsonl`` in the output
folder.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
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
from omnifuse.train import distributed
from omnifuse.train.distributed import Shard
from omnifuse.train.loop import fit, seed_everything
from omnifuse.train.objective import Objective

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
    distributed.init_from_env()
    with distributed.main_first():  # rank 0 builds the data and fills the cache
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
    if distributed.is_main():
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
    index: Sequence[int] | np.ndarray,
    hard_beta: float,
) -> torch.Tensor:
    shard = distributed.current()
    everyone = list(np.asarray(index).tolist())
    rows = shard.slice(everyone)
    counts = [len(Shard(r, shard.world).slice(everyone)) for r in range(shard.world)]
    embedded: dict[str, torch.Tensor] = {}
    for column in dict.fromkeys(c for pair in stage.pairs for c in pair):  # same order everywhere
        modality = model.modality_of(column)
        pooled, tokens, mask = data.features[column].batch(list(rows))
        with torch.set_grad_enabled(column in stage.trainable):
            embedded[column] = model.project(modality, pooled, tokens, mask)
            if shard.distributed:  # this process embeds its slice; the loss sees the batch
                embedded[column] = distributed.gather_rows(embedded[column], counts)
    groups = data.groups[torch.as_tensor(everyone)].to(model.device)
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


class StageObjective(Objective):
    """One stage of alignment for the training loop: InfoNCE over the stage's pairs, scored by
    the validation split's mean reciprocal rank."""

    def __init__(
        self,
        model: AlignedModel,
        stage: Stage,
        train_data: SplitData,
        val_data: SplitData | None,
        train: AlignTrain,
        offset: int,
    ) -> None:
        self.model, self.stage, self.train_data, self.val_data = model, stage, train_data, val_data
        self.train, self.offset = train, offset
        self.device = model.device
        self.hard_beta = train.hard_beta if train.hard_negatives == "in-batch" else 0.0
        self.cache: dict[str, Any] = {}

    def parameter_groups(self) -> list[dict[str, Any]]:
        return _parameters(self.model, self.stage)

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        """One generator per stage draws every epoch's batches in turn; earlier epochs' draws
        are replayed (cheap index shuffles), so an epoch's batches depend on the seed and the
        epoch alone and a resumed stage sees the same ones."""
        rng = np.random.default_rng([self.train.seed, self.offset])
        for _ in range(epoch):
            _batches(self.stage, self.train_data, self.train, rng, self.cache)
        return [
            b.tolist() for b in _batches(self.stage, self.train_data, self.train, rng, self.cache)
        ]

    def load(self, batches: Sequence[Sequence[int]], shard: Shard) -> Iterator[tuple[Any, float]]:
        """Every process gets each whole batch: the loss embeds this process's slice and
        gathers the others' (InfoNCE needs the whole batch's negatives), and every process
        computes the same loss, so each carries 1/N of it."""
        return ((batch, 1.0 / shard.world) for batch in batches)

    def loss(self, batch: np.ndarray) -> torch.Tensor:
        return _stage_loss(self.model, self.stage, self.train_data, batch, self.hard_beta)

    def train_mode(self) -> None:
        _set_modes(self.model, self.stage)

    def validate(self) -> dict[str, Any] | None:
        if self.val_data is None or len(self.val_data) < 2:
            return None
        self.model.eval()
        return {SELECTION_METRIC: validation_score(self.model, self.stage, self.val_data)}

    def describe(self, record: dict[str, Any]) -> None:
        pairs = self.stage.pairs
        record["stage"] = self.stage.name
        record["logit_scale"] = {
            f"{a}|{b}": self.model.logit_scale(scale_key(a, b)) for a, b in pairs
        }

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(weights)


def fit_stage(
    model: AlignedModel,
    stage: Stage,
    train_data: SplitData,
    val_data: SplitData | None,
    train: AlignTrain,
    folder: Path,
    history: list[dict[str, Any]],
) -> StageResult:
    """Train one stage in place through the training loop; the model ends with the stage's
    best validation weights, and the stage's epochs are appended to ``history``."""
    if not stage.trainable:
        raise ConfigError(f"stage {stage.name}: every head is locked; nothing to train")
    checkpoints = train.checkpoint_dir
    settings = dataclasses.replace(
        train,
        epochs=stage.epochs,
        lr=stage.lr,
        log_dir=str(folder),
        checkpoint_dir=str(Path(checkpoints) / stage.name.replace(":", "-"))
        if checkpoints
        else None,
    )
    objective = StageObjective(model, stage, train_data, val_data, train, len(history))
    result = fit(
        objective,
        settings,
        metric=SELECTION_METRIC,
        history=history,
        description=f"align {stage.name}",
    )
    history.extend(result.history)
    model.eval()
    return StageResult(
        stage.name,
        len(result.history),
        result.best_epoch,
        result.best_metric,
        result.stopped_early,
        round(result.seconds, 2),
    )
