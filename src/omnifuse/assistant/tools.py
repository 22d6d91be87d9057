"""The assistant's tools: omnifuse's own trained models and index, consulted before answering.

A tool looks at one :class:`ToolRequest` (the question and what came with it) and returns a
:class:`~omnifuse.assistant.notes.ToolNote`, or None when it has nothing to say. Two kinds live
here (image labels, OCR, colours and speech come from :mod:`omnifuse.assistant.perception`):

- :class:`TaskModelTool`: a trained fusion model folder whose inputs the request can fill (a
  world VQA model for a question about a scene, a classifier for an attached image), with its
  top answer, that answer's probability and the model's own test figures;
- :class:`RetrievalTool`: the nearest items of an aligned index for the attached image or
  recording (retrieval-augmented context), with their scores.

:class:`Toolbox` picks the tools whose inputs are present and that the configuration enables,
runs them, times each, and keeps a failing tool's error as its note rather than failing the
question.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from omnifuse.assistant.notes import ToolNote
from omnifuse.errors import ConfigError

QUESTION_TASKS = frozenset({"vqa", "qa"})
"""Tasks whose text or audio input is the user's question itself."""


@dataclass(frozen=True)
class ToolRequest:
    """One question and what came with it: ``image`` (a PIL image), ``question_audio`` (the
    spoken question, when it was spoken), ``audio`` (an attached recording), ``video``."""

    question: str
    image: Any = None
    question_audio: Any = None
    audio: Any = None
    video: Any = None

    def has(self, kind: str) -> bool:
        """Whether the request holds an input of ``kind`` (image, audio, video, text)."""
        if kind == "text":
            return bool(self.question.strip())
        if kind == "audio":
            return self.audio is not None or self.question_audio is not None
        return getattr(self, kind, None) is not None


class Tool(Protocol):
    """Something the assistant can consult."""

    name: str

    def applies(self, request: ToolRequest) -> bool:
        """Whether this request holds the inputs the tool needs."""
        ...

    def run(self, request: ToolRequest) -> ToolNote | None:
        """What the tool finds (``seconds`` is filled in by the toolbox)."""
        ...


class TaskModelTool:
    """A trained fusion model folder as a tool.

    Each of the model's columns is filled from the request by its modality: an image column from
    the attached image, a video column from the video; a text or audio column from the question
    (its words, or its recording) when the model's task answers questions (``vqa``) or the
    column is named for it (``question``, ``question_audio``), otherwise from an attached
    recording (``loader`` may supply the loaded model, e.g. one a server already holds). The
    model applies when every column can be filled. Its top
    answer is reported only at ``min_confidence`` or above, so an unsure model stays silent,
    and a question-answering model that reads the question's words is not asked one whose words
    its training questions never used (:mod:`omnifuse.assistant.domain`; its note then says
    which, and the LLM does not read it). A model that hears the question is not checked so: it
    gets the recording, and speech recognition garbles 40 % of world's synthetic questions.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        name: str | None = None,
        min_confidence: float = 0.0,
        loader: Callable[[], Any] | None = None,
    ) -> None:
        from omnifuse.assistant.domain import trained_vocabulary
        from omnifuse.models import read_config, read_metrics
        from omnifuse.models.encoders import encoder_kind

        self.folder = Path(folder)
        config = read_config(self.folder)
        self.name = f"model:{name or self.folder.name}"
        self.task = config.task
        self.kinds = {c: encoder_kind(spec) for c, spec in config.encoders.items()}
        metrics = read_metrics(self.folder)
        self.quality = known_quality(metrics)
        self.vocabulary = trained_vocabulary(metrics)
        self.min_confidence = min_confidence
        self._loader = loader
        self._model: Any = None

    def applies(self, request: ToolRequest) -> bool:
        return all(self._value(c, request) is not None for c in self.kinds)

    def run(self, request: ToolRequest) -> ToolNote | None:
        unknown = self._unknown_words(request)
        if unknown:
            reason = f"not asked: its training questions never use {', '.join(unknown)}"
            return ToolNote(self.name, "", quality=self.quality, data={"skipped": reason})
        if self._model is None:
            from omnifuse.models import load_model

            self._model = self._loader() if self._loader else load_model(self.folder)
        sample = {c: self._value(c, request) for c in self.kinds}
        output = self._model.predict_raw([sample])
        task = self._model.task
        top = [(str(lab), float(p)) for lab, p in task.top(output.logits.float().cpu(), 3)[0]]
        if not top:
            return None
        if not task.uses_classes:  # a regression's outputs are values, not probabilities
            text = ", ".join(f"{name} {value:.3g}" for name, value in top)
            return ToolNote(self.name, text, quality=self.quality, data={"values": top})
        label, confidence = top[0]
        if confidence < self.min_confidence:
            return None
        return ToolNote(
            name=self.name,
            text=label,
            confidence=confidence,
            quality=self.quality,
            data={"top": [list(pair) for pair in top], "answers_question": self._asked(request)},
        )

    def _asked(self, request: ToolRequest) -> bool:
        """Whether the question itself was one of the model's inputs (so its label answers it)."""
        return any(self._is_question(c) and self._value(c, request) is not None for c in self.kinds)

    def _unknown_words(self, request: ToolRequest) -> list[str]:
        from omnifuse.assistant.domain import unknown_words

        reads_words = any(
            self._is_question(c) and self.kinds[c] == "text" and self._value(c, request)
            for c in self.kinds
        )
        if self.vocabulary is None or not reads_words:
            return []  # a model that hears the question gets the recording, not our transcript
        return unknown_words(request.question, self.vocabulary)

    def _is_question(self, column: str) -> bool:
        reads_words = self.kinds[column] in ("text", "audio")
        return reads_words and (self.task in QUESTION_TASKS or "question" in column.lower())

    def _value(self, column: str, request: ToolRequest) -> Any:
        kind = self.kinds[column]
        if kind == "text":
            return request.question.strip() or None if self._is_question(column) else None
        if kind == "audio":
            return request.question_audio if self._is_question(column) else request.audio
        return getattr(request, kind, None)


def model_answer(notes: Sequence[ToolNote], min_confidence: float) -> ToolNote | None:
    """The most confident note of a model that was asked the question itself, if it reaches
    ``min_confidence``: on the questions it was trained for, such a model is known to be right
    more often than a small general LLM reading its answer from the notes."""
    asked = [n for n in notes if n.data.get("answers_question") and n.confidence is not None]
    best = max(asked, key=lambda n: n.confidence or 0.0, default=None)
    return best if best is not None and (best.confidence or 0.0) >= min_confidence else None


def known_quality(metrics: dict[str, Any]) -> str | None:
    """``test accuracy 0.65`` from a model folder's metrics: its test split's main figure
    (the validation split's when there is no test split)."""
    for split in ("test", "val"):
        scores = metrics.get(split)
        if not isinstance(scores, dict):
            continue
        for key in ("accuracy", "macro_f1", "r2", "mrr", "cider"):
            value = scores.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return f"{split} {key.replace('_', ' ')} {float(value):.2f}"
    return None


Embed = Callable[[str, Sequence[Any]], np.ndarray]
"""``embed(modality, items)`` → one vector per item in the index's space (e.g. an aligned
model's :meth:`encode`)."""


class RetrievalTool:
    """The nearest items of a vector index for the attached image (or recording): their
    first metadata field of ``fields`` they hold (a caption, a text, a label; else their id),
    with similarity scores, as retrieval-augmented context.

    ``index`` is the index, or a function that opens it when first needed; ``embed`` puts the
    input into the index's space; ``min_score`` drops weak neighbours.
    """

    name = "index"

    def __init__(
        self,
        index: Any,
        embed: Embed,
        *,
        fields: Sequence[str] = ("caption", "text", "label"),
        k: int = 3,
        min_score: float = -1.0,
        modalities: Sequence[str] = ("image", "audio"),
    ) -> None:
        if k < 1:
            raise ConfigError(f"k must be ≥ 1, got {k}")
        self._index = index
        self.embed = embed
        self.fields = tuple(fields)
        self.k = k
        self.min_score = min_score
        self.modalities = tuple(modalities)

    def applies(self, request: ToolRequest) -> bool:
        return self._input(request) is not None

    def _input(self, request: ToolRequest) -> tuple[str, Any] | None:
        for kind in self.modalities:
            value = request.audio if kind == "audio" else getattr(request, kind, None)
            if value is not None:
                return kind, value
        return None

    def run(self, request: ToolRequest) -> ToolNote | None:
        found = self._input(request)
        if found is None:
            return None
        kind, value = found
        vector = np.asarray(self.embed(kind, [value]), dtype=np.float32)
        hits = [h for h in self.index.search(vector, k=self.k)[0] if h.score >= self.min_score]

        items = [(self._describe(h.id, h.metadata), float(h.score)) for h in hits]
        if not items:
            return None
        text = "; ".join(f'"{item}" ({score:.2f})' for item, score in items)
        return ToolNote(
            name=self.name,
            text=f"nearest indexed items to the {kind}: {text}",
            confidence=items[0][1],
            data={"kind": kind, "hits": [{"text": t, "score": s} for t, s in items]},
        )

    @property
    def index(self) -> Any:
        if callable(self._index) and not hasattr(self._index, "search"):
            self._index = self._index()
        return self._index

    def _describe(self, item: str, metadata: dict[str, Any]) -> str:
        found = next((metadata[f] for f in self.fields if metadata.get(f) not in (None, "")), item)
        return str(found)


class Toolbox:
    """The tools an assistant may consult; ``enabled`` (tool names, ``model:*`` for every model)
    limits which run. Every applicable enabled tool runs, in order."""

    def __init__(self, tools: Sequence[Tool] = (), *, enabled: Sequence[str] | None = None):
        names = [tool.name for tool in tools]
        if len(set(names)) != len(names):
            raise ConfigError(f"two tools share a name: {names}")
        self.tools = list(tools)
        self.enabled = None if enabled is None else set(enabled)

    def is_enabled(self, name: str) -> bool:
        if self.enabled is None:
            return True
        return name in self.enabled or (name.startswith("model:") and "model:*" in self.enabled)

    def consult(self, request: ToolRequest) -> list[ToolNote]:
        """The notes of every enabled tool that applies; a tool that fails, whatever the error
        (a model folder gone bad, an index server down), leaves a note saying so (with
        ``data.error``), which the LLM does not read."""
        notes = []
        for tool in self.tools:
            if not self.is_enabled(tool.name) or not tool.applies(request):
                continue
            start = time.perf_counter()
            try:
                note = tool.run(request)
            except Exception as err:  # a failing tool must not fail the question
                note = ToolNote(tool.name, "failed", data={"error": f"{type(err).__name__}: {err}"})
            if note is not None:
                seconds = time.perf_counter() - start
                notes.append(ToolNote(**{**note.__dict__, "seconds": seconds}))
        return notes
