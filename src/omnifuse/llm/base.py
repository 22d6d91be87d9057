"""The language-model contract every backend implements (registry ``llms``).

A backend turns a conversation into text: ``generate``/``stream`` continue a raw prompt,
``chat``/``chat_stream`` answer a conversation using the model's own chat template when it has
one. A user message may also carry images and audio clips; a backend takes them natively only
when its :attr:`LLM.modalities` says so (a vision-language model, an OpenAI-compatible server that
accepts ``image_url``/``input_audio`` parts). Every other backend refuses such a message with a
typed error instead of silently answering without it, so the assistant above decides what to do:
perceive the media itself (labels, OCR, transcripts) and pass text, or hand the media over.

``count_tokens`` and ``count_prompt_tokens`` say what a text or a rendered conversation costs in
the model's own tokens, which the server reports as OpenAI's ``usage``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from omnifuse.errors import ConfigError, InvalidValueError
from omnifuse.llm.chat_templates import plain_transcript
from omnifuse.llm.media import AudioClip, check_audio, check_images, refuse_unsupported, same_media
from omnifuse.registry import Registry

if TYPE_CHECKING:
    from PIL.Image import Image

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")


@dataclass(frozen=True, eq=False)
class ChatMessage:
    """One turn of a conversation: its text, and the images and audio clips a user attached.

    ``images`` are PIL images; ``audio`` holds (mono float32 wave, sample rate) pairs. Only user
    turns carry media, as in the OpenAI chat API. Messages compare equal when their role, text
    and media are equal (pixel- and sample-exact).
    """

    role: Role
    content: str
    images: tuple[Image, ...] = ()
    audio: tuple[AudioClip, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"chat role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise ConfigError(f"chat content must be text, got {type(self.content).__name__}")
        object.__setattr__(self, "images", check_images(self.images))
        object.__setattr__(self, "audio", check_audio(self.audio))
        if (self.images or self.audio) and self.role != "user":
            raise InvalidValueError(
                f"only user messages carry images or audio, not {self.role!r} messages"
            )

    @property
    def has_media(self) -> bool:
        return bool(self.images or self.audio)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChatMessage):
            return NotImplemented
        return self.role == other.role and self.content == other.content and same_media(self, other)

    def __hash__(self) -> int:
        return hash((self.role, self.content, len(self.images), len(self.audio)))


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

    @property
    def modalities(self) -> frozenset[str]:
        """What the backend takes natively in a chat: ``text``, and ``image``/``audio`` for
        backends that see or hear. Messages carrying anything else are refused."""
        return TEXT_ONLY

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

    def check_messages(self, messages: Sequence[ChatMessage]) -> None:
        """InvalidValueError when a message carries media this backend cannot take; backends
        call it before rendering a conversation, so no image or clip is silently dropped."""
        refuse_unsupported(messages, self.modalities, self.name or type(self).__name__)

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes in this model (no special tokens added).

        The base estimate is one token per four UTF-8 bytes (the usual rule of thumb for BPE
        vocabularies on English); backends with a tokenizer count exactly.
        """
        return estimate_tokens(text)

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """How many tokens the rendered chat prompt of ``messages`` takes, special tokens and
        media included: what OpenAI's ``usage.prompt_tokens`` reports for the same request.

        The base version counts the plain ``User:``/``Assistant:`` transcript with
        :meth:`count_tokens`; backends with a chat template count what they really send.
        """
        self.check_messages(messages)
        prompt, _ = plain_transcript([(m.role, m.content) for m in messages])
        return self.count_tokens(prompt)

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release native resources (model memory, HTTP sessions)."""


TEXT_ONLY = frozenset({"text"})


def estimate_tokens(text: str) -> int:
    """About one token per four UTF-8 bytes, at least one for any non-empty text."""
    size = len(text.encode("utf-8"))
    return (size + 3) // 4


llms: Registry[LLM] = Registry(
    "llm",
    builtin_modules=(
        "omnifuse.llm.llama_cpp",
        "omnifuse.llm.hf",
        "omnifuse.llm.hf_vision",
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
