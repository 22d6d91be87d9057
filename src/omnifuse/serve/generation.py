"""Running an answer on its chat model's queue, and what the response says about it.

Every chat model has one worker thread, its queue: answers for that model are decoded there one
at a time, in arrival order (a model holds one decoding state), while answers for other models
run on their own queues and perception, transcription, embeddings, search and prediction run
beside them, never waiting behind a generation. The event loop receives the pieces through an
asyncio queue; a client that goes away sets ``cancelled`` and the worker stops decoding at the
next piece, so the model moves on to the next request.

Token usage is counted on the same worker once the answer ends, with the model's own tokenizer
(``LLM.count_prompt_tokens`` for the conversation sent, ``LLM.count_tokens`` for the reply).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from omnifuse.serve.schemas import ChatExtras, ChatUsage, ToolUse

UsageCounter = Callable[[str], ChatUsage | None]


class PieceStream:
    """Pulls an answer stream's pieces on its model's worker and hands them to the event loop.

    ``usage`` is known once the iteration ends, when a counter was given and the answer ran to
    its end.
    """

    DONE = object()

    def __init__(
        self,
        pieces: Iterator[str],
        loop: asyncio.AbstractEventLoop,
        count: UsageCounter | None = None,
    ) -> None:
        self.pieces = pieces
        self.loop = loop
        self.count = count
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.finished = False
        self.usage: ChatUsage | None = None

    def start(self, worker: ThreadPoolExecutor) -> PieceStream:
        """Queue the decoding on ``worker`` (the model's queue); returns self."""
        worker.submit(self.pump)
        return self

    def pump(self) -> None:
        """Runs on the model's worker until the answer ends or the client goes away."""
        parts: list[str] = []
        try:
            for piece in self.pieces:
                if self.cancelled.is_set():
                    break
                parts.append(piece)
                self.loop.call_soon_threadsafe(self.queue.put_nowait, piece)
            else:
                self.finished = True
                self.usage = self.count("".join(parts)) if self.count is not None else None
        except Exception as err:  # handed to the response, which reports it
            self.loop.call_soon_threadsafe(self.queue.put_nowait, err)
        finally:
            close = getattr(self.pieces, "close", None)
            if callable(close):
                close()
            self.loop.call_soon_threadsafe(self.queue.put_nowait, self.DONE)

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self.queue.get()
            if item is self.DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item


def usage_counter(llm: Any, messages: Sequence[Any] | None) -> UsageCounter | None:
    """Counts a finished reply's usage with ``llm``'s tokenizer; None when the backend cannot
    count or the conversation sent is unknown."""
    count_prompt = getattr(llm, "count_prompt_tokens", None)
    count_text = getattr(llm, "count_tokens", None)
    if messages is None or not callable(count_prompt) or not callable(count_text):
        return None

    def count(reply: str) -> ChatUsage | None:
        try:
            prompt = int(count_prompt(messages))
            completion = int(count_text(reply)) if reply else 0
        except Exception:  # usage is a courtesy: a backend that cannot count leaves it out
            return None
        return ChatUsage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    return count


def tools_of(stream: Any) -> list[Any]:
    """The tool notes of an answer: the stream's own, else its perception context's."""
    tools = getattr(stream, "tools", None)
    if tools is None:
        tools = getattr(getattr(stream, "context", None), "tools", None)
    return list(tools or [])


def sent_messages(stream: Any, history: Sequence[Any]) -> list[Any] | None:
    """The conversation the assistant sent its LLM: the stream's own record when it keeps one,
    else rebuilt the way the assistant builds it (its notes, the question, the history)."""
    messages = getattr(stream, "messages", None)
    if messages is not None:
        return list(messages)
    context = getattr(stream, "context", None)
    question = getattr(stream, "question", None)
    if context is None or not isinstance(question, str):
        return None
    from omnifuse.assistant.notes import notes_text
    from omnifuse.assistant.prompts import build_messages

    return build_messages(notes_text(context, tools_of(stream)), question, history)


def extras_of(stream: Any) -> ChatExtras:
    """What the assistant perceived and which tools it consulted, known before the first piece."""
    context = getattr(stream, "context", None)
    render = getattr(context, "to_prompt", None)
    transcript = getattr(stream, "transcript", None)
    if transcript is None and context is not None:
        transcript = getattr(context, "transcript", None)
    return ChatExtras(
        question=getattr(stream, "question", None),
        transcript=transcript if isinstance(transcript, str) else None,
        context=render() if callable(render) else None,
        tools=[tool_use(note) for note in tools_of(stream)],
    )


def tool_use(note: Any) -> ToolUse:
    """A :class:`~omnifuse.assistant.notes.ToolNote` in the API's shape (its ``to_dict``)."""
    shown = note.to_dict() if callable(getattr(note, "to_dict", None)) else dict(note)
    shown["data"] = jsonable(shown.get("data") or {})
    confidence = shown.get("confidence")
    shown["confidence"] = None if confidence is None else jsonable(float(confidence))
    return ToolUse.model_validate(shown)


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays as plain numbers and lists, tuples as lists and
    non-finite numbers as None, so a tool's finding always serialises as strict JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not isinstance(value, (str, bytes)):
        return jsonable(tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def short_answer_of(stream: Any, pieces: PieceStream) -> str | None:
    """The assistant's post-processed answer, when the stream ran to its end."""
    finish = getattr(stream, "answer", None)
    if not pieces.finished or not callable(finish):
        return None
    try:
        return str(finish().text)
    except Exception:  # an unfinished stream has no answer
        return None
