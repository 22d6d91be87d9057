"""The language-model contract every backend implements (registry ``llms``).

A backend turns text into text: ``generate``/``stream`` continue a raw prompt, ``chat``/
``chat_stream`` answer a conversation using the model's own chat template when it has one.
Perception (ASR, image labels, OCR, projected embeddings) happens above this layer, so a backend
never sees images or audio: it stays swappable between llama.cpp, Hugging Face and any
OpenAI-compatible server.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from omnifuse.errors import ConfigError
from omnifuse.registry import Registry

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation; ``content`` is plain text (perception is already rendered)."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"chat role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise ConfigError(f"chat content must be text, got {type(self.content).__name__}")


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings shared by every backend. ``temperature=0`` means greedy decoding."""

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be ≥ 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be ≥ 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")


class LLM(ABC):
    """A text-generation backend. Subclasses implement ``stream`` and ``chat_stream``;
    ``generate`` and ``chat`` join the streamed pieces, so both paths always agree."""

    name: str = ""

    @abstractmethod
    def stream(self, prompt: str, config: GenerationConfig | None = None) -> Iterator[str]:
        """Continue ``prompt``, yielding text pieces as they are decoded."""

    @abstractmethod
    def chat_stream(
        self, messages: Sequence[ChatMessage], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        """Answer the conversation as the assistant, yielding text pieces."""

    def generate(self, prompt: str, config: GenerationConfig | None = None) -> str:
        return "".join(self.stream(prompt, config))

    def chat(self, messages: Sequence[ChatMessage], config: GenerationConfig | None = None) -> str:
        return "".join(self.chat_stream(messages, config))

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release native resources (model memory, HTTP sessions)."""


llms: Registry[LLM] = Registry(
    "llm",
    builtin_modules=(
        "omnifuse.llm.llama_cpp",
        "omnifuse.llm.hf",
        "omnifuse.llm.openai_compat",
    ),
)

DEFAULT_LLM = "llama-cpp"
"""The offline default: Gemma-3-270M (GGUF Q4_K_M from PyPI) through llama-cpp-python."""


def create_llm(name: str = DEFAULT_LLM, **cfg: Any) -> LLM:
    """Build a registered backend, e.g. ``create_llm("openai", base_url="http://127.0.0.1:8080/v1")``."""
    return llms.create(name, **cfg)


def list_llms() -> list[str]:
    return llms.list()
