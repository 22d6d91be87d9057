"""What the assistant says: :class:`Answer`, and :class:`AnswerStream`, the answer as it is
decoded. When the reply ends it is reduced to the short answer the question asks for, replaced
by a trusted model's answer, or checked against the notes (:mod:`omnifuse.assistant.grounding`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from omnifuse.assistant.grounding import Strictness, abstention, is_grounded
from omnifuse.assistant.notes import ToolNote, notes_text
from omnifuse.assistant.perception import PerceptionContext
from omnifuse.assistant.premise import premise_refusal
from omnifuse.assistant.prompts import short_answer
from omnifuse.assistant.tools import model_answer
from omnifuse.llm.base import ChatMessage


@dataclass(frozen=True)
class Answer:
    """The short answer, the question it answers (the transcript when it was spoken), the
    transcript of the spoken question (None when typed), what was perceived, the model's raw
    reply, what each tool said (perception included, in the order they ran), and whether the
    notes supported the reply (when not, ``text`` says the assistant cannot tell)."""

    text: str
    question: str
    transcript: str | None
    context: PerceptionContext
    raw: str = ""
    tools: tuple[ToolNote, ...] = ()
    grounded: bool = True

    @property
    def notes(self) -> str:
        """The notes the LLM answered from: perception, then one line per tool."""
        return notes_text(self.context, self.tools)


class AnswerStream:
    """The answer as it is decoded: iterate for text pieces. ``question``, ``transcript`` and
    ``context`` are known before the first piece; :meth:`answer` finishes and returns the
    :class:`Answer`."""

    def __init__(
        self,
        pieces: Iterator[str],
        *,
        question: str,
        transcript: str | None,
        context: PerceptionContext,
        tools: Sequence[ToolNote] = (),
        strictness: Strictness = "normal",
        trust: float | None = None,
        messages: Sequence[ChatMessage] = (),
        on_finish: Callable[[Answer], None] | None = None,
    ) -> None:
        self._pieces = pieces
        self.question = question
        self.transcript = transcript
        self.context = context
        self.tools = tuple(tools)
        self.strictness = strictness
        self.trust = trust
        self.messages = tuple(messages)
        self._on_finish = on_finish
        self._parts: list[str] = []
        self._result: Answer | None = None

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        if self._result is not None:
            raise StopIteration
        while True:
            try:
                piece = next(self._pieces)
            except StopIteration:
                self._finish()
                raise
            if not self._parts:
                piece = piece.lstrip()
            if piece:
                self._parts.append(piece)
                return piece

    @property
    def text(self) -> str:
        """The raw reply decoded so far."""
        return "".join(self._parts)

    def answer(self) -> Answer:
        """Decode the rest of the reply and return the finished answer."""
        for _ in self:
            pass
        assert self._result is not None
        return self._result

    def close(self) -> None:
        """Stop decoding early (releases the model for the next request)."""
        close = getattr(self._pieces, "close", None)
        if callable(close):
            close()

    def _finish(self) -> None:
        raw = self.text
        notes = notes_text(self.context, self.tools)
        text, grounded = decide(raw, self.question, notes, self.tools, self.strictness, self.trust)
        self._result = Answer(
            text=text,
            question=self.question,
            transcript=self.transcript,
            context=self.context,
            raw=raw,
            tools=self.tools,
            grounded=grounded,
        )
        if self._on_finish is not None:
            self._on_finish(self._result)


def decide(
    raw: str,
    question: str,
    notes: str,
    tools: Sequence[ToolNote],
    strictness: Strictness = "normal",
    trust: float | None = None,
) -> tuple[str, bool]:
    """The short answer to ``question`` from the LLM's reply ``raw`` and whether the notes
    support it: that the image does not show what the question assumes, when the consistency
    tool refuted a premise; a trusted model's answer when one was asked the question, else the
    reply's short form when grounded, else what the assistant says when it cannot tell."""
    refusal = premise_refusal(tools)
    if refusal is not None:  # a premise the image contradicts is not answered
        return refusal, True
    trusted = None if trust is None else model_answer(tools, trust)
    if trusted is not None:
        return trusted.text, True
    text = short_answer(raw, question)
    if is_grounded(raw, text, question, notes, strictness):
        return text, True
    return abstention(notes), False
