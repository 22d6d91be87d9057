"""Language models joined to perception: backends (registry ``llms``), perception-to-text
context, the projector that feeds embeddings to an LM, and the assistant that answers."""

from omnifuse.llm.base import (
    DEFAULT_LLM,
    LLM,
    ChatMessage,
    GenerationConfig,
    create_llm,
    list_llms,
    llms,
)

__all__ = [
    "DEFAULT_LLM",
    "LLM",
    "ChatMessage",
    "GenerationConfig",
    "create_llm",
    "list_llms",
    "llms",
]
