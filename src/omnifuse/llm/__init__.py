"""Language-model backends behind one interface (:class:`LLM`, registry ``llms``): llama.cpp,
Hugging Face and any OpenAI-compatible server. Text in, text out: perception lives in
:mod:`omnifuse.assistant`, projected embeddings in :mod:`omnifuse.projector`."""

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
