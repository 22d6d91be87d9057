"""A chat request read as the assistant takes it: the question, the attachments, the history and
the sampling settings.

The API is stateless, so a client keeps a conversation going by sending all of it again; an
image (or recording, or video) attached a few turns back is still in ``messages`` and is still
what the user talks about. The last user message's own attachments come first; for each kind it
lacks, the most recent earlier user message holding one supplies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omnifuse.serve.api_errors import APIError
from omnifuse.serve.inputs import decode, fetch
from omnifuse.serve.media import decode_base64
from omnifuse.serve.schemas import AudioPart, ChatRequest, ImagePart, Message, TextPart, VideoPart
from omnifuse.serve.state import ServerState

PART_NAMES: dict[type, str] = {ImagePart: "image", AudioPart: "audio clip", VideoPart: "video"}


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


def parts_of(message: Message, kind: type) -> list[Any]:
    if not isinstance(message.content, list):
        return []
    return [p for p in message.content if isinstance(p, kind)]


def last_part(messages: list[Message], kind: type) -> Any:
    """The part of ``kind`` the last message holds (at most one), else the latest one an
    earlier user message holds; None when no message has one."""
    *earlier, last = messages
    parts = parts_of(last, kind)
    if len(parts) > 1:
        raise APIError(400, f"the last message may hold one {PART_NAMES[kind]}, not {len(parts)}")
    if parts:
        return parts[0]
    for message in reversed(earlier):
        found = parts_of(message, kind) if message.role == "user" else []
        if found:
            return found[-1]
    return None


async def parse_turn(state: ServerState, body: ChatRequest) -> Turn:
    """Question, fetched attachments and history of a chat request."""
    last = body.messages[-1]
    if last.role != "user":
        raise APIError(400, f"the last message must come from the user, not {last.role!r}")
    question = text_of(last).strip() or None
    if question is None and not parts_of(last, AudioPart):
        raise APIError(400, "the last message has neither text nor audio to answer")
    policy = state.policy
    image_part = last_part(body.messages, ImagePart)
    audio_part = last_part(body.messages, AudioPart)
    video_part = last_part(body.messages, VideoPart)
    turn = Turn(question=question, history=history_of(body.messages[:-1]))
    if image_part is not None:
        turn.image = await fetch(image_part.image_url.url, policy, label="image_url")
    if audio_part is not None:
        turn.audio = decode_base64(
            audio_part.input_audio.data, max_bytes=policy.max_bytes, label="input_audio"
        )
    if video_part is not None:
        turn.video = await fetch(video_part.video_url.url, policy, label="video_url")
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
    (greedy, one line: the short answers its prompts ask for). A request without a token
    budget gets the assistant's default cut to the server's cap; only a budget the client asked
    for can be refused as over the cap."""
    from omnifuse.assistant.assistant import DEFAULT_GENERATION
    from omnifuse.llm.base import GenerationConfig

    cap = state.config.limits.max_tokens
    asked = body.max_completion_tokens or body.max_tokens
    if asked is not None and asked > cap:
        raise APIError(422, f"max_tokens={asked} is over this server's limit of {cap}")
    max_tokens = asked if asked is not None else min(DEFAULT_GENERATION.max_tokens, cap)
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
