"""``POST /v1/chat/completions``: OpenAI-compatible chat with images, speech and video.

The last message must come from the user; its text parts form the question (when there is none,
the question is what its audio says). Attachments go to the assistant's perception, one of each
kind: the last message's own ``image_url``, ``input_audio`` and ``video_url`` part, or, for a
kind it lacks, the most recent one in an earlier user message, so a client that resends the
conversation keeps talking about the image it attached turns ago. Earlier turns' text is the
history. A request without ``max_tokens`` gets the assistant's default budget, cut to the
server's cap.

``stream: true`` answers with server-sent events: ``data: {chunk}`` lines ending with
``data: [DONE]``; with ``stream_options.include_usage`` a last chunk with no choices carries
``usage``. Perception runs on the thread pool; the answer is decoded on the chat model's own
queue (:mod:`omnifuse.serve.generation`), so several conversations are served at once and
requests that need no LLM never wait behind one. A client that disconnects stops its
generation at the next piece.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from omnifuse.serve.api_errors import APIError, as_api_error, error_body
from omnifuse.serve.conversation import Turn, decode_turn, generation_config, parse_turn
from omnifuse.serve.generation import (
    PieceStream,
    UsageCounter,
    extras_of,
    sent_messages,
    short_answer_of,
    usage_counter,
)
from omnifuse.serve.schemas import ChatExtras, ChatMessageOut, ChatRequest, ChatResponse, Choice
from omnifuse.serve.state import ServerState, state_of

router = APIRouter(tags=["chat"])


class Answering:
    """An opened answer: the assistant's stream, what it perceived, and how to count usage."""

    def __init__(self, stream: Any, extras: ChatExtras, count: UsageCounter | None) -> None:
        self.stream = stream
        self.extras = extras
        self.count = count

    def pieces(self, state: ServerState, model: str) -> PieceStream:
        """The answer's pieces, decoded on ``model``'s queue."""
        pieces = PieceStream(iter(self.stream), asyncio.get_running_loop(), self.count)
        return pieces.start(state.components.model_queue(model))


async def start_answer(state: ServerState, body: ChatRequest) -> Answering:
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

    def open_stream(turn: Turn) -> Any:
        return assistant.ask_stream(
            turn.question,
            image=turn.image,
            audio=turn.audio,
            video=turn.video,
            history=turn.history,
            config=config,
        )

    timeout = state.config.limits.request_timeout_s
    try:
        stream = await asyncio.wait_for(run_in_threadpool(open_stream, turn), timeout)
    except asyncio.TimeoutError:
        raise APIError(504, f"perception took longer than {timeout:g} s") from None
    count = usage_counter(assistant.llm, sent_messages(stream, turn.history))
    return Answering(stream, extras_of(stream), count)


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish: str | None,
    extras: ChatExtras | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    payload: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if extras is not None:
        payload["omnifuse"] = extras.model_dump(mode="json")
    return payload


def event(payload: dict[str, Any]) -> str:
    """One server-sent event holding ``payload``."""
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def sse_events(
    state: ServerState, body: ChatRequest, answer: Answering
) -> AsyncIterator[str]:
    """The answer as server-sent events; with ``include_usage`` every chunk carries
    ``usage: null`` and one more chunk, with no choices, the counts (OpenAI's convention)."""
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def send(delta: dict[str, Any], finish: str | None, extras: ChatExtras | None = None) -> str:
        payload = chunk(completion_id, created, body.model, delta, finish, extras)
        if include_usage:
            payload["usage"] = None
        return event(payload)

    yield send({"role": "assistant", "content": ""}, None, answer.extras)
    pieces = answer.pieces(state, body.model)
    deadline = time.monotonic() + state.config.limits.request_timeout_s
    try:
        async for piece in pieces:
            yield send({"content": piece}, None)
            if time.monotonic() > deadline:
                raise APIError(504, "the answer took longer than the request timeout")
        yield send({}, "stop", ChatExtras(answer=short_answer_of(answer.stream, pieces)))
        if include_usage:
            usage = None if pieces.usage is None else pieces.usage.model_dump()
            closing = chunk(completion_id, created, body.model, {}, None)
            yield event(closing | {"choices": [], "usage": usage})
    except Exception as err:
        known = as_api_error(err) or APIError(500, f"generation failed ({type(err).__name__})")
        yield event(error_body(known.status, known.message, known.code))
    finally:
        pieces.cancelled.set()
    yield "data: [DONE]\n\n"


async def complete(state: ServerState, body: ChatRequest, answer: Answering) -> ChatResponse:
    """The whole reply, with the assistant's short answer and the token usage."""
    pieces = answer.pieces(state, body.model)

    async def collect() -> str:
        return "".join([piece async for piece in pieces])

    try:
        text = await asyncio.wait_for(collect(), state.config.limits.request_timeout_s)
    except asyncio.TimeoutError:
        raise APIError(504, "the answer took longer than the request timeout") from None
    finally:
        pieces.cancelled.set()
    answer.extras.answer = short_answer_of(answer.stream, pieces)
    return ChatResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=body.model,
        choices=[Choice(message=ChatMessageOut(content=text))],
        usage=pieces.usage,
        omnifuse=answer.extras,
    )


@router.post("/v1/chat/completions", response_model=ChatResponse)
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    """Answer the conversation; images, speech and video (the last user message's, or the
    latest earlier user message's of each kind it lacks) are perceived first — labels, text
    in the image, transcript, the tools' findings — and given to the LLM as context."""
    state = state_of(request)
    answer = await start_answer(state, body)
    if body.stream:
        return StreamingResponse(
            sse_events(state, body, answer),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await complete(state, body, answer)
