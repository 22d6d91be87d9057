"""Edited scenes of a training split as minimal pairs: captions, and images rendered from them.

Each row of a world split gets ``variants`` edits of each kind (:mod:`omnifuse.data.world.edits`:
one colour, shape, count or relation changed). An edit is a caption — the true caption of the
edited scene, false of the original image — and, with ``render``, the edited scene drawn as
the world builder draws its scenes. Both go through the model's frozen encoders once and are
held as a split holds its features (pooled vectors, and tokens prepared for attention heads).

An edited scene with its caption is a pair as true as any in the data, and against the original
it differs in exactly one thing: in a batch, the original caption is the edited image's hardest
negative and the edited caption the original image's, so the heads learn what each word binds
to (which colour goes with which shape, what lies above what) from the contrast alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from omnifuse.align.data import ColumnFeatures, SplitData
from omnifuse.align.model import AlignedModel
from omnifuse.data.world.edits import row_plan, swapped_captions
from omnifuse.data.world.render import render_scene
from omnifuse.progress import track

EDIT_STREAM = 41
RENDER_STREAM = 43


@dataclass
class Edits:
    """The edits of a split: ``owner`` (M,) the row each belongs to, ``kinds``, ``texts``, and
    the frozen features of their captions and (when rendered) of their images."""

    owner: torch.Tensor
    kinds: list[str]
    texts: list[str]
    captions: ColumnFeatures
    images: ColumnFeatures | None = None
    drawn: list[Any] | None = None
    """The edited scenes as drawn (PIL images), when rendered."""

    def __len__(self) -> int:
        return len(self.kinds)

    def of_rows(self, rows: list[int]) -> list[int]:
        """The indices of the edits of ``rows``."""
        return torch.nonzero(torch.isin(self.owner, torch.tensor(rows))).flatten().tolist()


def make_edits(
    model: AlignedModel,
    split: SplitData,
    world_seed: int,
    *,
    variants: int,
    seed: int,
    render_size: int | None = None,
    encode_drawn: bool = True,
) -> Edits:
    """``variants`` edits of each kind for each row of ``split`` (duplicates and edits that
    read like the true caption dropped), their captions encoded, and with ``render_size`` their
    scenes drawn at that size and, unless not ``encode_drawn`` (a reader with an encoder of
    its own), encoded."""
    owners: list[int] = []
    kinds: list[str] = []
    texts: list[str] = []
    images: list[Any] = []
    for row, sample in enumerate(split.samples):
        scene, plan = row_plan(sample, world_seed)
        index = int(str(sample["id"]).rsplit("-", 1)[1])
        rng = np.random.default_rng([seed, EDIT_STREAM, index])
        seen = {str(sample["caption"])}
        for _ in range(variants):
            for kind, (text, edited) in swapped_captions(scene, plan, rng).items():
                if text in seen:
                    continue
                seen.add(text)
                if render_size is not None:
                    draw = np.random.default_rng([seed, RENDER_STREAM, index, len(seen)])
                    images.append(render_scene(edited, render_size, draw))
                owners.append(row)
                kinds.append(kind)
                texts.append(text)
    return Edits(
        torch.tensor(owners, dtype=torch.long),
        kinds,
        texts,
        frozen_features(model, "text", texts),
        frozen_features(model, "image", images) if render_size and encode_drawn else None,
        images if render_size is not None else None,
    )


def frozen_features(
    model: AlignedModel, modality: str, raws: list[Any], batch_size: int = 64
) -> ColumnFeatures:
    """The frozen encoder's features of ``raws`` as a split holds them: pooled, and tokens
    prepared for the head when it pools over tokens."""
    encoder = model.encoder(modality)
    head = model.head_for(modality)
    pooled: list[torch.Tensor] = []
    tokens: list[torch.Tensor] = []
    for start in track(range(0, len(raws), batch_size), f"encoding edited {modality}"):
        with torch.no_grad():
            encoded = encoder.encode(raws[start : start + batch_size], batch_size=batch_size)
        pooled.append(encoded.pooled.float().cpu())
        if head.pool is not None:
            prepared, mask = head.prepare_tokens(encoded.tokens.float().cpu(), encoded.mask.cpu())
            tokens.extend(prepared[i][mask[i]] for i in range(len(prepared)))
    if not pooled:
        return ColumnFeatures(torch.zeros(0, encoder.dim), [] if head.pool is not None else None)
    return ColumnFeatures(torch.cat(pooled), tokens if head.pool is not None else None)
