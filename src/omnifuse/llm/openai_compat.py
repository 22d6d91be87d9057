"""OpenAI-compatible backend (name ``openai``): any server speaking the OpenAI HTTP API.

vLLM, Ollama, llama.cpp's server, llama-cpp-python's server and OpenAI itself all expose
``/v1/completions`` and ``/v1/chat/completions``; this backend talks to them with the official
``openai`` client, streaming by server-sent events. The server's own error message is kept in the
typed omnifuse error it turns into, so a caller sees why a request was refused.

Servers that see or hear (vLLM or llama.cpp's server with a vision model, OpenAI's own, omnifuse's
``omnifuse serve``) are declared with ``vision=True`` / ``audio=True``: user messages' images then
go as ``image_url`` parts (PNG data URLs) and audio clips as ``input_audio`` parts (base64 WAV),
after the text. Token counts come from the server's ``usage`` when it reported one for the same
conversation, and otherwise are an estimate (see :meth:`OpenAICompatLLM.count_tokens`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from omnifuse.errors import ConfigError, EmptyInputError, InputError, OmnifuseError
from omnifuse.llm.base import LLM, ChatMessage, GenerationConfig, estimate_tokens, llms
from omnifuse.llm.deps import require
from omnifuse.llm.key_scope import KeyScope
from omnifuse.llm.media import image_data_url, wav_base64

LOCAL_API_KEY = "omnifuse-local"
"""Sent when no key is configured: local servers ignore it, and the client requires one."""


class LLMServerError(OmnifuseError):
    """The server could not be reached or failed on its side (5xx); ``status`` is the HTTP code."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


@llms.register("openai")
class OpenAICompatLLM(LLM):
    """A model behind an OpenAI-compatible server, e.g. ``base_url="http://127.0.0.1:8000/v1"``.

    ``model`` defaults to the first model the server lists; ``api_key`` to ``$OPENAI_API_KEY``,
    sent to ``base_url`` and below only, never on a redirect or request elsewhere
    (:class:`~omnifuse.llm.key_scope.KeyScope`).
    ``vision`` / ``audio`` declare that the model takes ``image_url`` / ``input_audio`` parts;
    without them a message carrying images or audio is refused rather than sent without them.
    ``stream_usage`` asks for the token usage at the end of a streamed chat (OpenAI's
    ``stream_options.include_usage``); turn it off for a server that refuses the field.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 1,
        vision: bool = False,
        audio: bool = False,
        stream_usage: bool = True,
    ) -> None:
        for option, value in (("vision", vision), ("audio", audio), ("stream_usage", stream_usage)):
            if not isinstance(value, bool):
                raise ConfigError(f"openai {option} must be true or false, got {value!r}")
        openai: Any = require("openai", "the openai client")
        self.base_url = api_base(base_url)
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or LOCAL_API_KEY,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=openai.DefaultHttpxClient(
                event_hooks={"request": [KeyScope(self.base_url)]}
            ),
        )
        self.model = model or self._first_model()
        self.stream_usage = stream_usage
        self._modalities = frozenset(
            {"text"} | ({"image"} if vision else set()) | ({"audio"} if audio else set())
        )
        self.last_usage: tuple[list[dict[str, Any]], int] | None = None
        """The turns of the last chat and the prompt tokens the server reported for them."""
        self.last_extras: dict[str, Any] = {}
        """Fields of the last reply beyond OpenAI's, merged over its chunks: what a server
        adds of its own, such as ``omnifuse serve``'s ``omnifuse`` (what it perceived)."""

    @property
    def modalities(self) -> frozenset[str]:
        return self._modalities

    def stream(self, prompt: str, config: GenerationConfig | None = None) -> Iterator[str]:
        if not prompt:
            raise EmptyInputError("the prompt is empty", modality="text")
        options = request_options(config or GenerationConfig())
        return self._guarded(self._complete(prompt, options))

    def chat_stream(
        self, messages: Sequence[ChatMessage], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        if not messages:
            raise EmptyInputError("the conversation has no messages", modality="text")
        self.check_messages(messages)
        options = request_options(config or GenerationConfig())
        return self._guarded(self._chat(chat_turns(messages), options))

    def count_tokens(self, text: str) -> int:
        """An estimate, one token per four UTF-8 bytes: the OpenAI API has no tokenizer route,
        and the model's vocabulary is not known here."""
        return estimate_tokens(text)

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """The server's own ``usage.prompt_tokens`` when the last chat sent these messages and
        the server reported usage; otherwise an estimate from the messages' text (images and
        audio, whose cost only the server knows, are not counted)."""
        self.check_messages(messages)
        if self.last_usage is not None and self.last_usage[0] == chat_turns(messages):
            return self.last_usage[1]
        return sum(estimate_tokens(f"{m.role}: {m.content}\n") for m in messages)

    def list_models(self) -> list[str]:
        """The model ids the server offers."""
        return [model.id for model in self._call(self.client.models.list)]

    def close(self) -> None:
        self.client.close()

    def _first_model(self) -> str:
        models = self.list_models()
        if not models:
            raise ConfigError(f"the server at {self.base_url} lists no models; pass model=")
        return models[0]

    def _complete(self, prompt: str, options: dict[str, Any]) -> Iterator[str]:
        def request(stream: bool) -> Any:
            return self.client.completions.create(
                model=self.model, prompt=prompt, stream=stream, **options
            )

        return self._streamed(request, chat=False)

    def _chat(self, turns: list[dict[str, Any]], options: dict[str, Any]) -> Iterator[str]:
        self.last_usage = None

        def request(stream: bool) -> Any:
            if stream and self.stream_usage:
                options["stream_options"] = {"include_usage": True}
            else:
                options.pop("stream_options", None)
            return self.client.chat.completions.create(
                model=self.model, messages=turns, stream=stream, **options
            )

        def record(usage: Any) -> None:
            tokens = getattr(usage, "prompt_tokens", None)
            if isinstance(tokens, int):
                self.last_usage = (turns, tokens)

        return self._streamed(request, chat=True, on_usage=record)

    def _streamed(
        self,
        request: Callable[[bool], Any],
        *,
        chat: bool,
        on_usage: Callable[[Any], None] | None = None,
    ) -> Iterator[str]:
        """Text pieces of a streamed reply, which must end with a ``finish_reason``.

        Some servers (llama-cpp-python's among them) check a request only after the event
        stream has begun, and on failure just close it: a stream that ends before any text
        and without a finish reason is asked again without streaming, so the server reports
        its error as an HTTP status with a message.
        """
        finished = produced = False
        self.last_extras = {}
        with request(True) as chunks:
            for chunk in chunks:
                merge_extras(self.last_extras, chunk.model_extra)
                if on_usage is not None and getattr(chunk, "usage", None) is not None:
                    on_usage(chunk.usage)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                piece = choice.delta.content if chat else choice.text
                if piece:
                    produced = True
                    yield piece
                finished = finished or bool(choice.finish_reason)
        if finished:
            return
        if produced:
            raise LLMServerError(
                f"OpenAI-compatible server {self.base_url} broke off the reply mid-stream"
            )
        reply = request(False)
        merge_extras(self.last_extras, reply.model_extra)
        if on_usage is not None and reply.usage is not None:
            on_usage(reply.usage)
        choice = reply.choices[0]
        text = choice.message.content if chat else choice.text
        if text:
            yield text

    def _guarded(self, pieces: Iterator[str]) -> Iterator[str]:
        try:
            yield from pieces
        except self._openai.APIError as exc:
            raise self._typed(exc) from exc

    def _call(self, request: Any) -> Any:
        try:
            return request()
        except self._openai.APIError as exc:
            raise self._typed(exc) from exc

    def _typed(self, exc: Any) -> OmnifuseError:
        """The omnifuse error for an openai client error, carrying the server's message."""
        status = getattr(exc, "status_code", None)
        message = server_message(exc)
        where = f"OpenAI-compatible server {self.base_url}"
        if status is None:
            return LLMServerError(f"{where} is unreachable: {message}")
        if status in (401, 403):
            return ConfigError(f"{where} refused the API key ({status}): {message}")
        if status == 404:
            return ConfigError(f"{where} has no such model or route ({status}): {message}")
        if 400 <= status < 500:
            reason = f"{where} rejected the request ({status}): {message}"
            return InputError(reason, modality="text")
        return LLMServerError(f"{where} failed ({status}): {message}", status=status)


def chat_turns(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI chat turns: plain text, or for a message with media a list of content parts, the
    text first, then ``image_url`` parts (PNG data URLs), then ``input_audio`` parts (WAV)."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if not message.has_media:
            turns.append({"role": message.role, "content": message.content})
            continue
        parts: list[dict[str, Any]] = []
        if message.content:
            parts.append({"type": "text", "text": message.content})
        parts += [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}}
            for image in message.images
        ]
        parts += [
            {"type": "input_audio", "input_audio": {"data": wav_base64(clip), "format": "wav"}}
            for clip in message.audio
        ]
        turns.append({"role": message.role, "content": parts})
    return turns


def merge_extras(into: dict[str, Any], extras: dict[str, Any] | None) -> None:
    """Add a chunk's extra fields to ``into``; a field that is an object in several chunks is
    merged key by key, later non-null values winning."""
    for key, value in (extras or {}).items():
        held = into.get(key)
        if isinstance(held, dict) and isinstance(value, dict):
            held.update({k: v for k, v in value.items() if v is not None})
        else:
            into[key] = dict(value) if isinstance(value, dict) else value


def api_base(base_url: str) -> str:
    """The API root: ``http://host:port`` alone means ``http://host:port/v1``."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"openai base_url must be an http(s) URL, got {base_url!r}")
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path or '/v1'}"


def request_options(config: GenerationConfig) -> dict[str, Any]:
    """GenerationConfig → request fields. ``extra`` goes in the JSON body as is (``top_k`` for
    vLLM or llama.cpp, ``repeat_penalty``...), since each server accepts its own extensions."""
    options: dict[str, Any] = {
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "seed": config.seed,
    }
    if config.stop:
        options["stop"] = list(config.stop)
    if config.extra:
        options["extra_body"] = dict(config.extra)
    return options


def server_message(exc: Any) -> str:
    """The ``error.message`` (or ``detail``) of the server's JSON body, else the client's text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("message", "detail"):
                if isinstance(error.get(key), str):
                    return str(error[key])
        if isinstance(error, str):
            return error
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    return str(getattr(exc, "message", exc))
