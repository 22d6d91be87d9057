"""OpenAI-compatible backend (name ``openai``): any server speaking the OpenAI HTTP API.

vLLM, Ollama, llama.cpp's server, llama-cpp-python's server and OpenAI itself all expose
``/v1/completions`` and ``/v1/chat/completions``; this backend talks to them with the official
``openai`` client, streaming by server-sent events. The server's own error message is kept in the
typed omnifuse error it turns into, so a caller sees why a request was refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from omnifuse.errors import ConfigError, EmptyInputError, InputError, OmnifuseError
from omnifuse.llm.base import LLM, ChatMessage, GenerationConfig, llms
from omnifuse.llm.deps import require

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

    ``model`` defaults to the first model the server lists; ``api_key`` to ``$OPENAI_API_KEY``.
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
    ) -> None:
        openai: Any = require("openai", "the openai client")
        self.base_url = api_base(base_url)
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or LOCAL_API_KEY,
            timeout=timeout_s,
            max_retries=max_retries,
        )
        self.model = model or self._first_model()

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
        options = request_options(config or GenerationConfig())
        turns = [{"role": m.role, "content": m.content} for m in messages]
        return self._guarded(self._chat(turns, options))

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

    def _chat(self, turns: list[dict[str, str]], options: dict[str, Any]) -> Iterator[str]:
        def request(stream: bool) -> Any:
            return self.client.chat.completions.create(
                model=self.model, messages=turns, stream=stream, **options
            )

        return self._streamed(request, chat=True)

    def _streamed(self, request: Callable[[bool], Any], *, chat: bool) -> Iterator[str]:
        """Text pieces of a streamed reply, which must end with a ``finish_reason``.

        Some servers (llama-cpp-python's among them) check a request only after the event
        stream has begun, and on failure just close it: a stream that ends before any text
        and without a finish reason is asked again without streaming, so the server reports
        its error as an HTTP status with a message.
        """
        finished = produced = False
        with request(True) as chunks:
            for chunk in chunks:
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
        choice = request(False).choices[0]
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
