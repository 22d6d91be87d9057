"""Train an aligned model for consistency: edited scenes as minimal pairs.

Contrastive alignment learns to tell a caption from the other captions of its batch, which
mostly differ in several words; it never has to notice that one colour, shape, count or
relation is wrong. Following NegCLIP (Yuksekgonul et al., "When and why vision-language models
behave like bags-of-words", ICLR 2023), each training scene brings its edits
(:mod:`omnifuse.align.consistency.negatives`) into its batch: in the caption–image stage the
edited scenes, drawn, join the batch as pairs of their own (so the original caption is the
edited image's hardest negative and the edited caption the original image's); in the binding
stage the edited captions join the caption side as negatives of the scene's recording.

Every stage of the recipe runs through the one training loop — from scratch, or from an aligned
model's weights — with the recipe's settings except those :class:`ConsistencyTraining` gives;
a stage keeps the epoch whose validation split best tells own captions from edited ones
(AUROC). The result is an aligned model folder like any (search and embeddings work on it) with
its retrieval figures and, fitted on the validation split, its ``consistency.json``. One
process; the edits are encoded once by the frozen encoders.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse.align.config import AlignConfig
from omnifuse.align.consistency.match_train import MatchTraining, train_matcher
from omnifuse.align.consistency.matcher import save_matcher
from omnifuse.align.consistency.negatives import Edits, make_edits
from omnifuse.align.data import ColumnFeatures, SplitData, load_training_data
from omnifuse.align.evaluate import evaluate_split
from omnifuse.align.loss import _directional, info_nce, positives
from omnifuse.align.model import AlignedModel, load_aligned, read_aligned_config, save_aligned
from omnifuse.align.train import Stage, StageObjective, build_aligned_model, stages
from omnifuse.data.world.edits import dataset_seed
from omnifuse.encoders.base import resolve_device
from omnifuse.errors import ConfigError, InvalidValueError
from omnifuse.tasks.metrics import roc_auc
from omnifuse.train.loop import fit


@dataclass(frozen=True)
class ConsistencyTraining:
    """How consistency training departs from the recipe: ``epochs`` and ``lr`` per stage and
    ``patience`` (None: the recipe's); ``variants`` edits of each kind per training scene,
    their scenes drawn as images too when ``render``; ``seed`` picks the edits; ``matcher``
    how the matcher trains afterwards (None: no matcher)."""

    epochs: int | None = None
    lr: float | None = None
    patience: int | None = None
    variants: int = 1
    render: bool = True
    seed: int = 0
    matcher: MatchTraining | None = field(default_factory=MatchTraining)

    def __post_init__(self) -> None:
        if (self.epochs is not None and self.epochs < 1) or self.variants < 1:
            raise ConfigError("epochs and variants must be at least 1")
        if (self.patience is not None and self.patience < 1) or (
            self.lr is not None and not self.lr > 0
        ):
            raise ConfigError("patience must be at least 1 and lr positive")


class EditObjective(StageObjective):
    """A stage of alignment whose batches hold their rows' edits: edited scenes as pairs of
    their own (caption–image, when drawn), else edited captions as negatives of the query side;
    scored by the validation AUROC of own against edited captions."""

    def __init__(
        self,
        model: AlignedModel,
        stage: Stage,
        data: dict[str, SplitData],
        edits: dict[str, Edits],
        config: AlignConfig,
        offset: int,
    ) -> None:
        super().__init__(model, stage, data["train"], data.get("val"), config.train, offset)
        self.text_column = model.specs["text"].column
        self.image_column = model.specs["image"].column if "image" in model.specs else None
        (self.query_column,) = [c for pair in stage.pairs for c in pair if c != self.text_column]
        self.edits = edits

    def loss(self, batch: Any) -> torch.Tensor:
        rows = list(np.asarray(batch).tolist())
        data, edits = self.train_data, self.edits["train"]
        query = self._embed(self.query_column, data.features[self.query_column], rows)
        text = self._embed(self.text_column, data.features[self.text_column], rows)
        chosen = edits.of_rows(rows)
        edited = self._embed(self.text_column, edits.captions, chosen)
        (a, b) = self.stage.pairs[0]
        scale = self.model.scales[f"{a}|{b}"]()
        if edits.images is not None and self.query_column == self.image_column:
            # edited scenes are pairs too: one batch of originals and their minimal pairs
            pictures = self._embed(self.query_column, edits.images, chosen)
            texts = [str(data.samples[r]["caption"]) for r in rows] + [
                edits.texts[i] for i in chosen
            ]
            codes: dict[str, int] = {}
            groups = torch.tensor([codes.setdefault(t, len(codes)) for t in texts])
            return info_nce(
                torch.cat([query, pictures]), torch.cat([text, edited]), scale, groups=groups
            )
        groups = data.groups[torch.as_tensor(rows)].to(self.device)
        positive = positives(groups, len(rows), self.device)
        logits = scale * query @ torch.cat([text, edited]).T  # (B, B + E)
        wide = torch.cat([positive, positive.new_zeros(len(rows), len(chosen))], dim=1)
        ones = torch.ones_like(logits)
        to_text = _directional(logits, wide, ones)
        to_query = _directional(logits[:, : len(rows)].T, positive.T, ones[:, : len(rows)].T)
        return 0.5 * (to_text + to_query)

    def _embed(self, column: str, features: ColumnFeatures, rows: list[int]) -> torch.Tensor:
        modality = self.model.modality_of(column)
        pooled, tokens, mask = features.batch(rows)
        with torch.set_grad_enabled(column in self.stage.trainable):
            return self.model.project(modality, pooled, tokens, mask)

    def validate(self) -> dict[str, Any] | None:
        if self.val_data is None or "val" not in self.edits:
            return None
        self.model.eval()
        return edit_auroc(self, self.val_data, self.edits["val"])


def edit_auroc(objective: EditObjective, data: SplitData, edits: Edits) -> dict[str, float]:
    """AUROC of each row's own caption against its edited ones (``auroc``, and
    ``auroc_<kind>`` per kind of edit), by cosine with the row's query side (image or
    recording)."""
    rows = list(range(len(data)))
    with torch.no_grad():
        query = objective._embed(
            objective.query_column, data.features[objective.query_column], rows
        )
        own = objective._embed(objective.text_column, data.features[objective.text_column], rows)
        edited = objective._embed(objective.text_column, edits.captions, list(range(len(edits))))
    true_scores = (query * own).sum(dim=1)
    false_scores = (query[edits.owner] * edited).sum(dim=1)
    scores = torch.cat([true_scores, false_scores]).detach().cpu().numpy()
    labels = np.concatenate([np.ones(len(rows)), np.zeros(len(edits.kinds))])
    out = {"auroc": roc_auc(labels, scores)}
    kinds = np.array(["own"] * len(rows) + edits.kinds)
    for kind in sorted(set(edits.kinds)):
        keep = (kinds == "own") | (kinds == kind)
        out[f"auroc_{kind}"] = roc_auc(labels[keep], scores[keep])
    return out


def train_consistency(
    config: AlignConfig,
    out: str | Path | None = None,
    settings: ConsistencyTraining | None = None,
    *,
    init: str | Path | None = None,
) -> tuple[AlignedModel, dict[str, Any]]:
    """Train the aligned model ``config`` describes with each scene's edits in its batch —
    from the weights of the aligned model in ``init`` when given (same heads), else from
    scratch — save it to ``out`` (default: the recipe's ``output``) and calibrate it on the
    validation split (when that fails, ``metrics["calibration"]`` says why and the model is
    kept)."""
    from omnifuse.align.consistency.calibrate import calibrate

    settings = settings or ConsistencyTraining()
    started = time.perf_counter()
    config = dataclasses.replace(config)
    train = config.train
    config.train = dataclasses.replace(
        train,
        epochs=settings.epochs or train.epochs,
        lr=settings.lr or train.lr,
        patience=settings.patience or train.patience,
        bind_epochs=None if settings.epochs else train.bind_epochs,
        bind_lr=None if settings.lr else train.bind_lr,
        hard_negatives="none",
    )
    folder = Path(out or config.output or "")
    if folder == Path():
        raise ConfigError("give an output folder (out=..., or 'output' in the recipe)")
    manifest, splits = load_training_data(config, folder)
    if init is not None:
        model = load_aligned(init, device=resolve_device(config.train.device))
    else:
        dims = {c: int(f.pooled.shape[1]) for c, f in splits["train"].features.items()}
        model = build_aligned_model(config, dims, resolve_device(config.train.device))
    if "text" not in model.modalities:
        raise ConfigError("consistency training needs a text column (the captions to edit)")
    edits = split_edits(model, manifest, splits, settings)
    folder.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    results = []
    for stage in stages(config):
        objective = EditObjective(model, stage, splits, edits, config, len(history))
        train = dataclasses.replace(
            config.train, epochs=stage.epochs, lr=stage.lr, log_dir=str(folder)
        )
        result = fit(
            objective, train, metric="auroc", history=history, description=f"edits {stage.name}"
        )
        history.extend(result.history)
        results.append(
            {
                "name": stage.name,
                "epochs": len(result.history),
                "best_epoch": result.best_epoch,
                "best_val_auroc": result.best_metric,
            }
        )
        model.eval()
    metrics: dict[str, Any] = {
        "data": {"manifest": str(manifest), **{k: len(v) for k, v in splits.items()}},
        "train": {
            "init": None if init is None else str(init),
            "stages": results,
            "edits": {k: len(v.kinds) for k, v in edits.items()},
            "settings": dataclasses.asdict(settings),
            "seconds": round(time.perf_counter() - started, 2),
        },
    }
    for role in ("val", "test"):
        if role in splits:
            metrics[role] = evaluate_split(model, splits[role])
    save_aligned(model, folder, metrics=metrics, extra={"config": config.to_dict()})
    if settings.matcher is not None:
        metrics["matcher"] = fit_matcher(model, splits, edits, settings.matcher, folder)
    try:
        calibrate(folder, manifest=manifest, model=model)
    except InvalidValueError as err:  # the model is kept; calibrate it later on more scenes
        metrics["calibration"] = f"not calibrated: {err}"
    return model, metrics


def fit_matcher(
    model: AlignedModel,
    splits: dict[str, SplitData],
    edits: dict[str, Edits],
    settings: MatchTraining,
    folder: Path,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the matcher on the splits' edits and save it into the model's folder; its
    training figures (with ``data``, what it was trained on, when given)."""
    started = time.perf_counter()
    matcher, result = train_matcher(model, splits, edits, settings)
    figures = {
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "best_val_auroc": result.best_metric,
        "val": result.history[result.best_epoch - 1] if result.history else {},
        "settings": dataclasses.asdict(settings),
        "seconds": round(time.perf_counter() - started, 2),
        **({"data": data} if data else {}),
    }
    save_matcher(matcher, folder, figures)
    return figures


def add_matcher(
    folder: str | Path,
    settings: MatchTraining | None = None,
    *,
    variants: int = 1,
    seed: int = 0,
    scenes: str | Path | None = None,
) -> dict[str, Any]:
    """Give an aligned world model in ``folder`` a matcher — trained on its own training data,
    or on the train and val splits of another world ``scenes`` manifest (more scenes than the
    aligned model needed), with every training scene's edits drawn — and calibrate it again on
    the model's own validation split; the matcher's figures."""
    from omnifuse.align.consistency.calibrate import calibrate

    folder = Path(folder)
    model = load_aligned(folder)
    config = recipe_of(folder)
    if scenes is not None:
        config = matcher_recipe(config, model, Path(scenes))
    manifest, splits = load_training_data(config, folder)
    settings = settings or MatchTraining()
    edit_settings = ConsistencyTraining(variants=variants, seed=seed)
    own_grid = settings.grid != "final"  # the drawn edits are read by the matcher's encoder
    edits = split_edits(model, manifest, splits, edit_settings, encode_drawn=not own_grid)
    data = {"manifest": str(manifest), **{k: len(v) for k, v in splits.items()}}
    figures = fit_matcher(model, splits, edits, settings, folder, data)
    calibrate(folder, model=model)
    return figures


def matcher_recipe(config: AlignConfig, model: AlignedModel, scenes: Path) -> AlignConfig:
    """``config`` reading the world manifest ``scenes`` instead, encoding only the columns the
    matcher reads (its text and image columns) into that data folder's own cache."""
    if not scenes.is_file():
        raise ConfigError(f"--scenes {scenes}: no such manifest (a world scenes.jsonl)")
    columns = [model.specs["text"].column, model.specs["image"].column]
    data = dataclasses.replace(config.data, dataset=None, manifest=str(scenes), dir=None)
    return dataclasses.replace(
        config,
        data=data,
        encoders={c: config.encoders[c] for c in columns},
        pairs=[columns],
        bind=[],
        heads={},
        cache=dataclasses.replace(config.cache, dir=None),
    )


def split_edits(
    model: AlignedModel,
    manifest: Path,
    splits: dict[str, SplitData],
    settings: ConsistencyTraining,
    *,
    encode_drawn: bool = True,
) -> dict[str, Edits]:
    """The train and val splits' edits (the train split's drawn too, when ``render``; encoded
    by the model's image encoder unless not ``encode_drawn``)."""
    world_seed = dataset_seed(manifest.parent)
    size = int(json.loads((manifest.parent / "dataset.json").read_text())["params"]["image_size"])
    return {
        role: make_edits(
            model,
            splits[role],
            world_seed,
            variants=settings.variants,
            seed=settings.seed,
            render_size=size if settings.render and role == "train" else None,
            encode_drawn=encode_drawn,
        )
        for role in ("train", "val")
        if role in splits
    }


def recipe_of(folder: str | Path) -> AlignConfig:
    """The training recipe an aligned model folder was made with (its config.json)."""
    recipe = read_aligned_config(folder).get("config")
    if not isinstance(recipe, dict):
        raise ConfigError(f"{folder}: its config.json holds no training recipe")
    return AlignConfig.from_dict(recipe)
