"""What one tool told the assistant: the record every tool returns and every surface shows.

The assistant consults several of omnifuse's own parts before it answers (trained task models,
the aligned index, image labels, OCR, colours, speech recognition). Each answer goes into the
LLM's context as one line naming the tool, with its confidence and how good the tool is known to
be, and the same record is shown to the user (``omnifuse ask --json``, the API's ``omnifuse``
extra, "what I used" on the web page), so a reply can be traced to what it was built from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omnifuse.assistant.perception import PerceptionContext


@dataclass(frozen=True)
class ToolNote:
    """One tool's finding.

    - ``name``: the tool (``labels``, ``ocr``, ``colours``, ``index``, ``model:world-vqa``, ...);
    - ``text``: what it found, as the LLM reads it (``a cat (92 %)``);
    - ``confidence``: the tool's own probability for its main finding, when it has one;
    - ``quality``: how good the tool is known to be, from its validation figures
      (``validation accuracy 0.65 on 240 questions``), when known;
    - ``seconds``: what running it cost;
    - ``data``: the structured finding (labels with probabilities, hits with scores, ...).
    """

    name: str
    text: str
    confidence: float | None = None
    quality: str | None = None
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def to_prompt(self) -> str:
        """``name: text (confidence 92 %; validation accuracy 0.65)`` for the LLM's context."""
        facts = []
        if self.confidence is not None:
            facts.append(f"confidence {round(100 * self.confidence)} %")
        if self.quality:
            facts.append(self.quality)
        suffix = f" ({'; '.join(facts)})" if facts else ""
        return f"{self.name}: {self.text}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shown to users: every field, ``seconds`` rounded to milliseconds."""
        return {
            "name": self.name,
            "text": self.text,
            "confidence": self.confidence,
            "quality": self.quality,
            "seconds": round(self.seconds, 3),
            "data": self.data,
        }


def notes_text(context: PerceptionContext, tools: Sequence[ToolNote]) -> str:
    """Perception notes, then one line per tool that found something (perception's own notes,
    named ``image``, ``video`` and ``asr``, are already in the first part)."""
    lines = [context.to_prompt()] if not context.is_empty else []
    lines += [note.to_prompt() for note in tools if note.name not in PERCEPTION and _usable(note)]
    return "\n".join(line for line in lines if line)


PERCEPTION = frozenset({"image", "video", "asr"})


def _usable(note: ToolNote) -> bool:
    return "error" not in note.data and bool(note.text)


def merge_timings(timed: Sequence[ToolNote]) -> list[ToolNote]:
    """One note per perception step: decoding an image is added to the cost of seeing it."""
    merged: dict[str, ToolNote] = {}
    for note in timed:
        earlier = merged.get(note.name)
        seconds = note.seconds + (earlier.seconds if earlier else 0.0)
        text = note.text or (earlier.text if earlier else "")
        merged[note.name] = replace(note, text=text, seconds=seconds)
    return list(merged.values())
