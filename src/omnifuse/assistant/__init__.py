"""The perception-to-text assistant: omnifuse's own models turn images, audio and video into
text notes (:mod:`omnifuse.assistant.perception`), prompts frame the notes and the question
(:mod:`omnifuse.assistant.prompts`), and any backend of :mod:`omnifuse.llm` answers
(:mod:`omnifuse.assistant.assistant`).

Names are imported from their submodules on first use, so importing the package loads neither
an LLM runtime nor the speech engines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnifuse.lazy import lazy_exports

if TYPE_CHECKING:
    from omnifuse.assistant.answer import Answer, AnswerStream
    from omnifuse.assistant.assistant import DEFAULT_GENERATION, Assistant, ChatSession
    from omnifuse.assistant.perception import Perceiver, PerceptionContext

_HOMES = {
    "DEFAULT_GENERATION": "assistant",
    "Answer": "answer",
    "AnswerStream": "answer",
    "Assistant": "assistant",
    "ChatSession": "assistant",
    "Perceiver": "perception",
    "PerceptionContext": "perception",
}

__all__ = [
    "DEFAULT_GENERATION",
    "Answer",
    "AnswerStream",
    "Assistant",
    "ChatSession",
    "Perceiver",
    "PerceptionContext",
]


__getattr__ = lazy_exports(__name__, _HOMES, globals())
