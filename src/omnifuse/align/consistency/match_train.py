"""Train a matcher (:mod:`~omnifuse.align.consistency.matcher`) on a world split's minimal pairs.

Every training scene gives the matcher a handful of (description, image, fits?) examples:

- its image with its own caption (fits), with each edited caption (one colour, shape, count or
  relation changed: does not fit) and with three other scenes' captions (do not fit);
- each edited scene, drawn, with its own edited caption (fits) and with the original caption
  (does not fit): the same two captions now trade roles, so only the image can decide;
- the short statements a question presupposes (:func:`~omnifuse.data.world.edits.
  premise_statements`: "a red circle", true or with its colour or shape changed), so the
  assistant's premise check reads the matcher too.

Positives and negatives weigh the same in the loss (binary cross-entropy with the positive
class weighted by the ratio of counts). The one training loop runs it; the epoch whose
validation split best tells each scene's own caption from its edited ones (AUROC) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from omnifuse.align.consistency.matcher import (
    Matcher,
    MatcherConfig,
    fine_grid_entry,
    image_features,
    pixel_patches,
    token_features,
)
from omnifuse.align.consistency.negatives import Edits
from omnifuse.align.data import ColumnFeatures, SplitData
from omnifuse.align.model import AlignedModel
from omnifuse.data.world.edits import premise_statements
from omnifuse.data.world.scene import Scene
from omnifuse.errors import ConfigError
from omnifuse.tasks.metrics import roc_auc
from omnifuse.train.config import TrainConfig
from omnifuse.train.loop import TrainResult, fit
from omnifuse.train.objective import DataObjective, decay_groups
from omnifuse.types import pad_tokens

OTHERS_PER_SCENE = 3
MATCH_STREAM = 44
GRIDS = ("final", "fine")


@dataclass(frozen=True)
class MatchTraining:
    """The matcher's shape and how it trains (rows of scenes per batch, not examples).
    ``grid`` is ``"final"`` (the aligned model's image tokens) or ``"fine"`` (its image
    encoder read on a finer grid: :func:`~omnifuse.align.consistency.matcher.fine_grid_entry`)."""

    dim: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    pixel_view: bool = False
    patch: int = 4
    grid: str = "final"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    patience: int | None = 6
    per_scene: int = 12
    premises: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ConfigError(f"matcher grid must be one of {list(GRIDS)}, got {self.grid!r}")

    def shape(self, grid_tokens: int) -> dict[str, Any]:
        """The matcher's shape options (:class:`MatcherConfig`'s) for images of
        ``grid_tokens`` tokens: the pixel view tiles a square grid, one patch per token."""
        side = round(grid_tokens**0.5)
        square = side * side == grid_tokens
        return {
            "dim": self.dim,
            "layers": self.layers,
            "heads": self.heads,
            "dropout": self.dropout,
            "pixels": side * self.patch if self.pixel_view and square else 0,
            "patch": self.patch,
        }

    def train_config(self, log_dir: str | None) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            seed=self.seed,
            log_dir=log_dir,
            device="cpu",
        )


@dataclass
class MatchSet:
    """Token banks (and the images' pixel patches) and, per scene, its (image index, text
    index, fits, kind) examples; ``image_encoder`` the matcher's own image encoder entry when
    the image tokens are its."""

    texts: list[torch.Tensor]
    images: list[torch.Tensor]
    examples: list[list[tuple[int, int, int, str]]] = field(default_factory=list)
    patches: list[torch.Tensor] | None = None
    image_encoder: dict[str, Any] | None = None

    def flat(self, rows: Sequence[int]) -> list[tuple[int, int, int, str]]:
        return [e for r in rows for e in self.examples[r]]

    def batch(self, examples: Sequence[tuple[int, int, int, str]]) -> dict[str, torch.Tensor]:
        """The matcher's inputs (``text``, ``text_mask``, ``image``, ``image_mask``, and
        ``patches`` when held) and the ``labels`` of ``examples``."""
        text, text_mask = pad_tokens([self.texts[t] for _, t, _, _ in examples])
        image, image_mask = pad_tokens([self.images[i] for i, _, _, _ in examples])
        out = {"text": text, "text_mask": text_mask, "image": image, "image_mask": image_mask}
        if self.patches is not None:
            out["patches"] = torch.stack([self.patches[i] for i, _, _, _ in examples])
        out["labels"] = torch.tensor([float(y) for _, _, y, _ in examples])
        return out


def column_tokens(
    model: AlignedModel, features: ColumnFeatures, raws: Sequence[Any], modality: str
) -> list[torch.Tensor]:
    """A column's prepared tokens: the cached ones, else the raw values encoded now."""
    if features.tokens is not None:
        return list(features.tokens)
    return token_features(model, modality, raws)


def match_set(
    model: AlignedModel,
    split: SplitData,
    edits: Edits,
    *,
    premises: bool,
    seed: int,
    view: MatcherConfig | None = None,
) -> MatchSet:
    """The examples of ``split`` with its ``edits`` (edited images used when drawn), with the
    images' pixel patches when ``view`` reads them."""
    text_column = model.specs["text"].column
    image_column = model.specs["image"].column
    rows = len(split)
    captions = [str(s[text_column]) for s in split.samples]
    texts = column_tokens(model, split.features[text_column], captions, "text")
    originals = [s[image_column] for s in split.samples]
    drawn = list(edits.drawn or [])
    own = view.image_encoder if view is not None else None
    if view is not None and own is not None:
        images = image_features(view, model, originals + drawn)
    else:
        images = column_tokens(model, split.features[image_column], originals, "image")
        if drawn:
            encoded = edits.images.tokens if edits.images is not None else None
            images += list(encoded or token_features(model, "image", drawn))
    edit_texts = edits.captions.tokens or token_features(model, "text", edits.texts)
    texts = texts + list(edit_texts)
    statements: list[tuple[int, str, bool, str]] = []
    if premises:
        for r, sample in enumerate(split.samples):
            index = int(str(sample["id"]).rsplit("-", 1)[1])
            rng = np.random.default_rng([seed, MATCH_STREAM, index])
            for text, true, kind in premise_statements(Scene.from_dict(sample["scene"]), rng):
                statements.append((r, text, true, kind))
        first = len(texts)
        texts = texts + token_features(model, "text", [s for _, s, _, _ in statements])
    patches = None
    if view is not None and view.patches:
        patches = pixel_patches([str(o) for o in originals] + drawn, view)
    out = MatchSet(texts, images, [[] for _ in range(rows)], patches, own)
    rng = np.random.default_rng([seed, MATCH_STREAM])
    for r in range(rows):
        out.examples[r].append((r, r, 1, "own"))
        others = [j for j in range(rows) if captions[j] != captions[r]]
        for j in rng.choice(len(others), size=min(OTHERS_PER_SCENE, len(others)), replace=False):
            out.examples[r].append((r, others[int(j)], 0, "other"))
    owners = edits.owner.tolist()
    for e, (owner, kind) in enumerate(zip(owners, edits.kinds, strict=True)):
        out.examples[owner].append((owner, rows + e, 0, kind))
        if drawn:
            out.examples[owner].append((rows + e, rows + e, 1, "own-edited"))
            out.examples[owner].append((rows + e, owner, 0, kind))
    for n, (r, _, true, kind) in enumerate(statements):
        out.examples[r].append((r, first + n, int(true), "premise" if true else f"premise-{kind}"))
    return out


class MatchObjective(DataObjective):
    """Binary cross-entropy of the matcher over batches of scenes' examples — at most
    ``per_scene`` of each scene's, drawn afresh for every batch from the seed and the batch —
    and validation AUROC of own captions against edited ones (``auroc``, and per kind)."""

    def __init__(
        self,
        matcher: Matcher,
        train: MatchSet,
        val: MatchSet | None,
        config: TrainConfig,
        per_scene: int,
    ) -> None:
        super().__init__(matcher, train.examples, val, config)
        self.matcher = matcher
        self.train_set = train
        self.per_scene = per_scene
        labels = [y for row in train.examples for _, _, y, _ in row]
        self.pos_weight = torch.tensor((len(labels) - sum(labels)) / max(sum(labels), 1))

    def parameter_groups(self) -> list[dict[str, Any]]:
        return decay_groups(self.matcher.parameters(), self.config.weight_decay)

    def drawn(self, batch: Sequence[int]) -> list[tuple[int, int, int, str]]:
        """Each scene's examples, or ``per_scene`` of them drawn without replacement."""
        rng = np.random.default_rng([self.config.seed, MATCH_STREAM, *batch])
        out = []
        for row in batch:
            examples = self.train_set.examples[row]
            if len(examples) > self.per_scene:
                chosen = rng.choice(len(examples), size=self.per_scene, replace=False)
                examples = [examples[int(i)] for i in chosen]
            out.extend(examples)
        return out

    def loss(self, batch: Sequence[int]) -> torch.Tensor:
        inputs = self.train_set.batch(self.drawn(batch))
        labels = inputs.pop("labels")
        logits = self.matcher(**inputs)
        return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=self.pos_weight)

    def validate(self) -> dict[str, Any] | None:
        if self.val_data is None:
            return None
        return caption_auroc(self.matcher, self.val_data)


def caption_auroc(matcher: Matcher, data: MatchSet) -> dict[str, float]:
    """AUROC of each scene's own caption against its edited captions (``auroc``), per kind of
    edit, and for the presupposed statements (``auroc_premise``)."""
    examples = data.flat(range(len(data.examples)))
    scores = matcher.score(
        [data.texts[t] for _, t, _, _ in examples],
        [data.images[i] for i, _, _, _ in examples],
        None if data.patches is None else [data.patches[i] for i, _, _, _ in examples],
    ).numpy()
    labels = np.array([y for _, _, y, _ in examples])
    kinds = np.array([k for _, _, _, k in examples])
    captions = ~np.char.startswith(kinds, "premise") & (kinds != "other")
    out = {"auroc": roc_auc(labels[captions], scores[captions])}
    for kind in sorted(set(kinds[captions & (labels == 0)])):
        keep = (kinds == "own") | (kinds == kind)
        out[f"auroc_{kind}"] = roc_auc(labels[keep], scores[keep])
    premise = np.char.startswith(kinds, "premise")
    if premise.any() and 0 < labels[premise].sum() < premise.sum():
        out["auroc_premise"] = roc_auc(labels[premise], scores[premise])
    return out


def train_matcher(
    model: AlignedModel,
    splits: dict[str, SplitData],
    edits: dict[str, Edits],
    settings: MatchTraining | None = None,
    *,
    log_dir: str | None = None,
) -> tuple[Matcher, TrainResult]:
    """A matcher over the aligned model's text and image tokens, trained on the train split's
    examples and selected on the validation split's."""
    settings = settings or MatchTraining()
    if not {"text", "image"} <= set(model.modalities):
        raise ConfigError("a matcher needs an aligned model with text and image")

    view = matcher_view(model, splits["train"], settings)

    def examples(role: str) -> MatchSet:
        return match_set(
            model,
            splits[role],
            edits[role],
            premises=settings.premises,
            seed=settings.seed,
            view=view,
        )

    val = examples("val") if "val" in splits and "val" in edits else None
    return fit_match_set(examples("train"), val, settings, log_dir=log_dir)


def matcher_view(model: AlignedModel, split: SplitData, settings: MatchTraining) -> MatcherConfig:
    """The matcher shape ``settings`` give for the images of ``split`` (how many grid tokens
    the model's image encoder makes of them decides the pixel view)."""
    column = model.specs["image"].column
    first = [split.samples[0][column]]
    if settings.grid == "fine":
        own = MatcherConfig(image_encoder=fine_grid_entry(model))
        grid = image_features(own, model, first)[0]
        return MatcherConfig(**settings.shape(len(grid)), image_encoder=own.image_encoder)
    grid = column_tokens(model, split.features[column], first, "image")[0]
    return MatcherConfig(**settings.shape(len(grid)))


def fit_match_set(
    train: MatchSet,
    val: MatchSet | None,
    settings: MatchTraining,
    *,
    log_dir: str | None = None,
) -> tuple[Matcher, TrainResult]:
    """Train a matcher of ``settings``' shape on built example sets."""
    config = MatcherConfig(
        text_dim=int(train.texts[0].shape[-1]),
        image_dim=int(train.images[0].shape[-1]),
        image_encoder=train.image_encoder,
        **settings.shape(len(train.images[0])),
    )
    torch.manual_seed(settings.seed)
    matcher = Matcher(config)
    train_config = settings.train_config(log_dir)
    objective = MatchObjective(matcher, train, val, train_config, settings.per_scene)
    result = fit(objective, train_config, metric="auroc", description="matcher")
    return matcher.eval(), result
