"""Using a trained projector model: captions of images or video clips, answers to questions.

A folder written by :func:`~omnifuse.projector.train_projector` holds the soft-prompt side,
the run config (which encoders made its features) and the frozen LM (or the path of an ``hf``
one). Loading it rebuilds the same frozen encoders, so raw inputs (paths, bytes, PIL images,
``(wave, sample_rate)``) go in and text comes out::

    captioner = load_captioner("runs/world-caption")
    captioner.caption(["scene.png"])            # ['a red circle above a small blue star']
    answerer = load_answerer("runs/world-vqa-gen")
    answerer.answer(["scene.png"], ["question.wav"])   # ['2']

Bad inputs raise the encoders' typed :class:`~omnifuse.errors.InputError`, naming the source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from omnifuse.encoders.base import Encoder, resolve_device
from omnifuse.errors import ConfigError
from omnifuse.models.encoders import build_encoder
from omnifuse.projector.config import ProjectorConfig
from omnifuse.projector.data import prompt_text
from omnifuse.projector.evaluate import CAPTION_TASKS
from omnifuse.projector.model import ProjectorLM
from omnifuse.projector.train import load_projector_lm


class ProjectorPipeline:
    """Frozen encoders + soft prompt + frozen LM, from raw inputs to generated text."""

    def __init__(
        self,
        model: ProjectorLM,
        config: ProjectorConfig,
        *,
        device: str = "cpu",
        batch_size: int = 16,
    ) -> None:
        self.model = model
        self.config = config
        self.device = resolve_device(device)
        self.batch_size = batch_size
        seed = config.cache.seed
        # frozen feature extractors, in eval mode as the feature cache ran them (no dropout)
        self.encoders: dict[str, Encoder] = {
            column: build_encoder({**spec, "seed": seed}, device=self.device).eval()
            for column, spec in config.encoders.items()
        }

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def columns(self) -> tuple[str, ...]:
        return self.config.columns

    def generate(
        self,
        inputs: Mapping[str, Sequence[Any]],
        rows: Sequence[Mapping[str, Any]] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> list[str]:
        """Text for each sample: ``inputs[column]`` lists one raw input per sample for every
        encoded column; ``rows`` give the prompt template's fields per sample."""
        missing = [c for c in self.columns if c not in inputs]
        if missing:
            raise ConfigError(f"this model reads {self.columns}; missing input(s) {missing}")
        counts = {len(inputs[c]) for c in self.columns}
        if len(counts) != 1:
            raise ConfigError("give the same number of inputs for every column")
        count = counts.pop()
        if count == 0:
            return []
        rows = list(rows) if rows is not None else [{} for _ in range(count)]
        if len(rows) != count:
            raise ConfigError("give one prompt row per sample")
        limit = max_tokens or self.config.max_tokens
        out: list[str] = []
        for start in range(0, count, self.batch_size):
            stop = start + self.batch_size
            batch = {c: list(inputs[c][start:stop]) for c in self.columns}
            out += self._generate_batch(batch, rows[start:stop], limit)
        return out

    def _generate_batch(
        self, inputs: Mapping[str, list[Any]], rows: Sequence[Mapping[str, Any]], limit: int
    ) -> list[str]:
        features = {c: self.encoders[c].encode(inputs[c]).to(self.device) for c in self.columns}
        count = len(inputs[self.columns[0]])
        present = torch.ones(count, len(self.columns), dtype=torch.bool, device=self.device)
        prompts = [self.model.lm.token_ids(prompt_text(row, self.config.prompt)) for row in rows]
        ids = self.model.generate(features, present, prompts, max_tokens=limit)
        return [self.model.lm.decode(row) for row in ids]


class Captioner(ProjectorPipeline):
    """Captions images (or video clips, for a video-caption model)."""

    def caption(self, items: Sequence[Any]) -> list[str]:
        """One caption per item: image or clip paths, bytes, PIL images, arrays."""
        return self.generate({self.columns[0]: list(items)})


class VQAAnswerer(ProjectorPipeline):
    """Answers questions about images; the question is heard (an audio column) or read (a
    ``{question}`` field of the prompt), as the model was trained."""

    def answer(self, images: Sequence[Any], questions: Sequence[Any]) -> list[str]:
        """One answer per (image, question): questions are audio inputs for a spoken-question
        model, strings for a model that reads the question in its prompt."""
        if len(images) != len(questions):
            raise ConfigError("give one question per image")
        image_column = next((c for c in self.columns if c == "image"), self.columns[0])
        inputs: dict[str, list[Any]] = {image_column: list(images)}
        spoken = [c for c in self.columns if c != image_column]
        if spoken:
            inputs[spoken[0]] = list(questions)
            return self.generate(inputs)
        rows = [{"question": str(q)} for q in questions]
        return self.generate(inputs, rows)


def load_projector(
    path: str | Path, *, device: str = "cpu", batch_size: int = 16
) -> Captioner | VQAAnswerer:
    """The pipeline for a projector folder: a :class:`Captioner` or a :class:`VQAAnswerer`."""
    model, config = load_projector_lm(path, device=device)
    cls = Captioner if config.task in CAPTION_TASKS else VQAAnswerer
    return cls(model, config, device=device, batch_size=batch_size)


def load_captioner(path: str | Path, *, device: str = "cpu", batch_size: int = 16) -> Captioner:
    """A captioning model folder → :class:`Captioner` (``.caption(images)``)."""
    pipeline = load_projector(path, device=device, batch_size=batch_size)
    if not isinstance(pipeline, Captioner):
        raise ConfigError(f"{path} holds a {pipeline.task} model, not a captioner")
    return pipeline


def load_answerer(path: str | Path, *, device: str = "cpu", batch_size: int = 16) -> VQAAnswerer:
    """A VQA model folder → :class:`VQAAnswerer` (``.answer(images, questions)``)."""
    pipeline = load_projector(path, device=device, batch_size=batch_size)
    if not isinstance(pipeline, VQAAnswerer):
        raise ConfigError(f"{path} holds a {pipeline.task} model, not a question answerer")
    return pipeline
