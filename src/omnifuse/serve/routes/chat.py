"""``POST /v1/chat/completions``: OpenAI-compatible chat with images, speech and video.

The last message must come from the user; its ``image_url``, ``input_audio`` and ``video_url``
parts go to the assistant's perception (one of each at most), its text parts form the question
(when there is none, the question is what the audio says). Earlier turns are the history, as
text. ``stream: true`` answers with server-sent events: ``data: {chunk}`` lines ending with
``data: [DONE]``. The LLM runs on one thread of its own, one conversation at a time; a client
that disconnects stops its generation at the next piece.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from omnifuse.serve.api_errors import APIError, as_api_error, error_body
from omnifuse.serve.inputs import decode, fetch
from omnifuse.serve.media import decode_base64
from omnifuse.serve.schemas import (
    AudioPart,
    ChatExtras,
    ChatMessageOut,
    ChatRequest,
    ChatResponse,
    Choice,
    ImagePart,
    Message,
    TextPart,
    VideoPart,
)
from omnifuse.serve.state import ServerState, state_of

router = APIRouter(tags=["chat"])
LLM_THREAD = "llm"


@dataclass
class Turn:
    """The parsed request: question, attachments (still encoded) and history."""

    question: str | None
    image: Any = None
    audio: Any = None
    video: Any = None
    history: list[Any] = field(default_factory=list)


def text_of(message: Message) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(p.text for p in message.content if isinstance(p, TextPart))


def history_of(messages: list[Message]) -> list[Any]:
    from omnifuse.llm.base import ChatMessage

    turns = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        text = text_of(message)
        if text:
            turns.append(ChatMessage(role, text))
    return turns


PART_NAMES: dict[type, str] = {ImagePart: "image", AudioPart: "audio clip", VideoPart: "video"}


def one_part(message: Message, kind: type) -> Any:
    parts = [p for p in message.content or [] if isinstance(p, kind)]
    if len(parts) > 1:
        raise APIError(400, f"the last message may hold one {PART_NAMES[kind]}, not {len(parts)}")
    return parts[0] if parts else None


async def parse_turn(state: ServerState, body: ChatRequest) -> Turn:
    """Question, fetched attachments and history of a chat request."""
    last = body.messages[-1]
    if last.role != "user":
        raise APIError(400, f"the last message must come from the user, not {last.role!r}")
    policy = state.policy
    image_part = one_part(last, ImagePart) if isinstance(last.content, list) else None
    audio_part = one_part(last, AudioPart) if isinstance(last.content, list) else None
    video_part = one_part(last, VideoPart) if isinstance(last.content, list) else None
    turn = Turn(question=text_of(last).strip() or None, history=history_of(body.messages[:-1]))
    if image_part is not None:
        turn.image = await fetch(image_part.image_url.url, policy, label="image_url")
    if audio_part is not None:
        turn.audio = decode_base64(
            audio_part.input_audio.data, max_bytes=policy.max_bytes, label="input_audio"
        )
    if video_part is not None:
        turn.video = await fetch(video_part.video_url.url, policy, label="video_url")
    if turn.question is None and turn.audio is None:
        raise APIError(400, "the last message has neither text nor audio to answer")
    return turn


def decode_turn(state: ServerState, turn: Turn) -> Turn:
    """Decode the attachments with the server's limits (blocking)."""
    limits = state.decode_limits
    if turn.image is not None:
        turn.image = decode("image", turn.image, limits, label="image_url")
    if turn.audio is not None:
        turn.audio = decode("audio", turn.audio, limits, label="input_audio")
    return turn


def generation_config(state: ServerState, body: ChatRequest) -> Any:
    """The request's sampling settings; what it leaves out follows the assistant's defaults
    (greedy, one line: the short answers its prompts ask for)."""
    from omnifuse.assistant.assistant import DEFAULT_GENERATION
    from omnifuse.llm.base import GenerationConfig

    max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_GENERATION.max_tokens
    cap = state.config.limits.max_tokens
    if max_tokens > cap:
        raise APIError(422, f"max_tokens={max_tokens} is over this server's limit of {cap}")
    if body.stop is None:
        stop = tuple(DEFAULT_GENERATION.stop)
    else:
        stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    if len(stop) > 4 or any(not s for s in stop):
        raise APIError(422, "stop holds at most 4 sequences, none of them empty")
    return GenerationConfig(
        max_tokens=max_tokens,
        temperature=0.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=stop,
        seed=0 if body.seed is None else body.seed,
    )


class PieceStream:
    """Pulls an answer stream's pieces on the LLM thread and hands them to the event loop."""

    DONE = object()

    def __init__(self, pieces: Iterator[str], loop: asyncio.AbstractEventLoop) -> None:
        self.pieces = pieces
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.finished = False

    def pump(self) -> None:
        """Runs on the LLM thread until the answer ends or the client goes away."""
        try:
            for piece in self.pieces:
                if self.cancelled.is_set():
                    break
                self.loop.call_soon_threadsafe(self.queue.put_nowait, piece)
            else:
                self.finished = True
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


def extras_of(stream: Any) -> ChatExtras:
    context = getattr(stream, "context", None)
    render = getattr(context, "to_prompt", None)
    transcript = getattr(stream, "transcript", None)
    if transcript is None and context is not None:
        transcript = getattr(context, "transcript", None)
    return ChatExtras(
        question=getattr(stream, "question", None),
        transcript=transcript if isinstance(transcript, str) else None,
        context=render() if callable(render) else None,
    )


async def start_answer(state: ServerState, body: ChatRequest) -> tuple[Any, ChatExtras]:
    """Perceive the attachments and open the answer stream (errors here are plain 4xx)."""
    if body.model != state.config.llm:
        raise APIError(
            404,
            f"no chat model {body.model!r}; this server chats with {state.config.llm!r}",
            code="model_not_found",
        )
    config = generation_config(state, body)
    turn = await parse_turn(state, body)
    turn = await run_in_threadpool(decode_turn, state, turn)
    assistant = await run_in_threadpool(state.components.assistant)
    stream = await state.components.serial(
        LLM_THREAD,
        lambda: assistant.ask_stream(
            turn.question,
            image=turn.image,
            audio=turn.audio,
            video=turn.video,
            history=turn.history,
            config=config,
        ),
    )
    return stream, extras_of(stream)


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish: str | None,
    extras: ChatExtras | None = None,
) -> str:
    """One SSE event holding a ``chat.completion.chunk``."""
    payload: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if extras is not None:
        payload["omnifuse"] = extras.model_dump()
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def sse_events(
    state: ServerState, body: ChatRequest, stream: Any, extras: ChatExtras
) -> AsyncIterator[str]:
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    opening = {"role": "assistant", "content": ""}
    yield chunk(completion_id, created, body.model, opening, None, extras)
    pieces = PieceStream(iter(stream), asyncio.get_running_loop())
    state.components.serial_executor(LLM_THREAD).submit(pieces.pump)
    deadline = time.monotonic() + state.config.limits.request_timeout_s
    try:
        async for piece in pieces:
            yield chunk(completion_id, created, body.model, {"content": piece}, None)
            if time.monotonic() > deadline:
                raise APIError(504, "the answer took longer than the request timeout")
        closing = ChatExtras(answer=short_answer_of(stream, pieces))
        yield chunk(completion_id, created, body.model, {}, "stop", closing)
    except Exception as err:
        known = as_api_error(err) or APIError(500, f"generation failed ({type(err).__name__})")
        yield f"data: {json.dumps(error_body(known.status, known.message, known.code))}\n\n"
    finally:
        pieces.cancelled.set()
    yield "data: [DONE]\n\n"


def short_answer_of(stream: Any, pieces: PieceStream) -> str | None:
    """The assistant's post-processed answer, when the stream ran to its end."""
    finish = getattr(stream, "answer", None)
    if not pieces.finished or not callable(finish):
        return None
    try:
        return str(finish().text)
    except Exception:  # an unfinished stream has no answer
        return None


async def complete(state: ServerState, body: ChatRequest, stream: Any) -> tuple[str, str | None]:
    """The whole reply, and the assistant's short answer."""
    pieces = PieceStream(iter(stream), asyncio.get_running_loop())
    state.components.serial_executor(LLM_THREAD).submit(pieces.pump)

    async def collect() -> str:
        return "".join([piece async for piece in pieces])

    try:
        text = await asyncio.wait_for(collect(), state.config.limits.request_timeout_s)
    except asyncio.TimeoutError:
        raise APIError(504, "the answer took longer than the request timeout") from None
    finally:
        pieces.cancelled.set()
    return text, short_answer_of(stream, pieces)


@router.post("/v1/chat/completions", response_model=ChatResponse)
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    """Answer the conversation; images, speech and video in the last user message are
    perceived first (labels, text in the image, transcript) and given to the LLM as context."""
    state = state_of(request)
    stream, extras = await start_answer(state, body)
    if body.stream:
        return StreamingResponse(
            sse_events(state, body, stream, extras),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    text, extras.answer = await complete(state, body, stream)
    return ChatResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=body.model,
        choices=[Choice(message=ChatMessageOut(content=text))],
        omnifuse=extras,
    )
