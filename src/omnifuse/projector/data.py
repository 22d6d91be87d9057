"""Data of a projector run: the manifest (built-in datasets built once), cached encoder features,
the text the LM must produce, and the corpus the built-in LM is pretrained on.

Each sample pairs the cached token features of the input columns with a prompt (the config's
template filled from the row) and a target text (a column, or a description derived from the
row such as :func:`describe_clip`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from omnifuse.data import prepare as data_prepare
from omnifuse.data.cache import (
    CachedBatch,
    CachedFeatureDataset,
    CachedSample,
    FeatureCache,
    collate_cached,
)
from omnifuse.data.cache.encode import sample_name
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.errors import ConfigError
from omnifuse.projector.config import DERIVED_TARGETS, ProjectorConfig
from omnifuse.projector.decoder import words
from omnifuse.projector.lm import FrozenLM

GROUP_COLUMNS = ("qtype",)
"""Row fields that split the evaluation into groups (accuracy per question type)."""


def describe_clip(record: Mapping[str, Any]) -> str:
    """The caption of a ``world`` video clip, from its manifest record.

    Both shapes move; only the ``sounding`` one makes the sound (its tone), so the caption
    names each shape with its colour and direction and says which one sounds::

        a blue star moves left and makes a sound while a red circle moves up
    """
    try:
        a, b = record["sounding"], record["distractor"]
        return (
            f"a {a['colour']} {a['shape']} moves {a['direction']} and makes a sound "
            f"while a {b['colour']} {b['shape']} moves {b['direction']}"
        )
    except (KeyError, TypeError):
        raise ConfigError(
            "target clip_description needs world video records (sounding, distractor)"
        ) from None


def target_text(row: Mapping[str, Any], target: str) -> str:
    """The text to generate for ``row``: the ``target`` column, or a derived description."""
    if target == "clip_description":
        return describe_clip(row)
    value = row.get(target)
    if value is None or str(value).strip() == "":
        raise ConfigError(f"target: row {row.get('id', '?')!r} has no {target!r} text")
    return str(value)


def prompt_text(row: Mapping[str, Any], template: str) -> str:
    """The prompt template filled with the row's fields (``"{question}"`` → the question)."""
    try:
        return template.format(**{k: v for k, v in row.items() if isinstance(k, str)})
    except KeyError as err:
        raise ConfigError(f"prompt: row {row.get('id', '?')!r} has no field {err}") from None


def prepare_manifest(config: ProjectorConfig) -> Path:
    """The manifest to train on, through the one data path (built-in datasets built once)."""
    return data_prepare.prepare_manifest(config.data, config.output.parent / "data")


def encode_features(config: ProjectorConfig, manifest_path: Path) -> FeatureCache:
    """Encode the input columns into the feature cache (resumable; tokens kept)."""
    cache = config.cache
    folder = cache_dir_for(config, manifest_path)
    data_prepare.encode_columns(manifest_path, config.encoders, cache, folder)
    return FeatureCache(folder)


def cache_dir_for(config: ProjectorConfig, manifest_path: Path) -> Path:
    """``cache.dir``, else the projector's default beside the output folder."""
    if config.cache.dir:
        return Path(config.cache.dir)
    return data_prepare.default_cache_dir(config.output, manifest_path, prefix="projector-")


def lm_corpus(config: ProjectorConfig, manifest: Manifest) -> list[str]:
    """Texts of the training split for pretraining the built-in LM, each distinct text once.

    Always the task's own ``prompt target`` strings. For the ``world`` dataset, whichever of its
    manifests exist also give every caption, every ``question answer``, every clip description
    and, per scene, documents that put its texts side by side (:func:`scene_documents`). With
    ``lm.keyword_context`` each single text also comes after its words in a random order
    (:func:`keyword_context`)."""
    singles = [
        f"{prompt_text(row, config.prompt)} {target_text(row, config.target)}".strip()
        for row in _train_rows(manifest)
    ]
    documents: list[str] = []
    if config.data.dataset == "world":
        more, documents = _world_texts(manifest.path.parent)
        singles += more
    singles = list(dict.fromkeys(singles))
    texts = singles + documents
    if config.lm.keyword_context:
        rng = random.Random(config.lm.pretrain.get("seed", 0))
        texts += [keyword_context(text, rng) for text in singles]
    return list(dict.fromkeys(texts))


def keyword_context(text: str, rng: random.Random) -> str:
    """``text`` after its distinct words in a random order: ``circle a red : a red circle``.

    A frozen LM reads a soft prompt only as well as it learnt to read context. Plain sentences
    never make it look back beyond the sentence; after this shuffled bag of words, writing the
    sentence means finding its content words in the context, which is what the soft prompt
    offers it later (the projector learns to present what the image shows as such words)."""
    bag = list(dict.fromkeys(w for w in words(text) if w.isalnum()))
    rng.shuffle(bag)
    return f"{' '.join(bag)} : {text}"


def scene_documents(caption: str, qa: Sequence[str]) -> list[str]:
    """The texts of one scene as documents: ``caption. q a`` for each question, the caption
    before all its questions and after them.

    A frozen LM reads a soft prompt only as well as it learnt to read context: in these
    documents a caption, an answer or another question's answer depends on what came before
    (the same scene), which a plain list of sentences never asks of the LM. The soft prompt
    then stands in for that context."""
    if not qa:
        return [caption]
    joined = ". ".join(qa)
    return [f"{caption}. {q}" for q in qa] + [f"{caption}. {joined}", f"{joined}. {caption}"]


def _train_rows(manifest: Manifest) -> list[dict[str, Any]]:
    split = manifest.schema.split
    return [s for s in manifest.samples if split is None or s.get(split) == "train"]


def _world_texts(folder: Path) -> tuple[list[str], list[str]]:
    """Single texts (captions, ``question answer``, clip descriptions) and scene documents."""
    captions: dict[str, str] = {}
    if (folder / "scenes.jsonl").is_file():
        for row in _train_rows(load_manifest(folder / "scenes.jsonl")):
            captions[str(row["id"])] = str(row["caption"])
    qa: dict[str, list[str]] = {}
    if (folder / "vqa.jsonl").is_file():
        for row in _train_rows(load_manifest(folder / "vqa.jsonl")):
            qa.setdefault(str(row.get("scene_id")), []).append(f"{row['question']} {row['answer']}")
    singles = list(captions.values()) + [t for pairs in qa.values() for t in pairs]
    if (folder / "video.jsonl").is_file():
        clips = _train_rows(load_manifest(folder / "video.jsonl"))
        singles += [describe_clip(row) for row in clips]
    documents = [
        text
        for scene, caption in captions.items()
        for text in scene_documents(caption, qa.get(scene, []))
    ]
    return singles, documents


@dataclass
class TextSample:
    """The text side of one sample: prompt and target as text and LM ids, and its group."""

    prompt: str
    target: str
    prompt_ids: list[int]
    target_ids: list[int]
    group: str | None


@dataclass
class ProjectorBatch:
    """Collated features (columns sorted) with the texts of the batch."""

    features: CachedBatch
    texts: list[TextSample]


class ProjectorDataset(Dataset[tuple[CachedSample, TextSample]]):
    """Samples of one split with cached features of ``columns`` and their texts, held in memory
    (features shared between samples of the same content, e.g. the questions of one image)."""

    def __init__(
        self,
        cache: FeatureCache,
        manifest: Manifest,
        config: ProjectorConfig,
        lm: FrozenLM,
        *,
        split: str | None,
    ) -> None:
        self.base = CachedFeatureDataset(cache, manifest, list(config.columns), split=split)
        rows = {sample_name(r, manifest, i): r for i, r in enumerate(manifest.samples)}
        names = [name for name, _, _ in self.base.rows]
        self.texts = [self._text(rows.get(name, {}), config, lm) for name in names]
        self._memo: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.samples = [self._load(i) for i in range(len(self.base.rows))]

    @staticmethod
    def _text(row: Mapping[str, Any], config: ProjectorConfig, lm: FrozenLM) -> TextSample:
        prompt = prompt_text(row, config.prompt)
        target = target_text(row, config.target)
        group = next((str(row[c]) for c in GROUP_COLUMNS if row.get(c) is not None), None)
        return TextSample(prompt, target, lm.token_ids(prompt), lm.token_ids(target), group)

    def _load(self, index: int) -> CachedSample:
        name, keys, _ = self.base.rows[index]
        features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        present: dict[str, bool] = {}
        for column in self.base.columns:
            key = keys.get(column)
            present[column] = key is not None
            if key is None:
                dim = self.base.dims[column]
                features[column] = (torch.zeros(1, dim), torch.zeros(dim))
                continue
            memo = self._memo.get((column, key))
            if memo is None:
                store = self.base.cache.store(column)
                memo = (store.read_tokens(key), store.read_pooled(key))
                self._memo[(column, key)] = memo
            features[column] = memo
        return CachedSample(features, present, None, name)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[CachedSample, TextSample]:
        return self.samples[index], self.texts[index]


def collate_projector(items: Sequence[tuple[CachedSample, TextSample]]) -> ProjectorBatch:
    return ProjectorBatch(collate_cached([s for s, _ in items]), [t for _, t in items])


__all__ = [
    "DERIVED_TARGETS",
    "ProjectorBatch",
    "ProjectorDataset",
    "TextSample",
    "collate_projector",
    "describe_clip",
    "encode_features",
    "lm_corpus",
    "prepare_manifest",
    "prompt_text",
    "target_text",
]
