"""Language-model backends behind one interface (:class:`LLM`, registry ``llms``): llama.cpp
(with an ``mmproj`` projector for vision GGUFs), Hugging Face causal LMs, Hugging Face
image-text-to-text models (``hf-vision``) and any OpenAI-compatible server. Chat messages may
carry images and audio; a backend takes them when its ``modalities`` say so and refuses them
otherwise. Perception into text lives in :mod:`omnifuse.assistant`, projected embeddings in
:mod:`omnifuse.projector`."""

from omnifuse.llm.base import (
    DEFAULT_LLM,
    LLM,
    ChatMessage,
    GenerationConfig,
    create_llm,
    estimate_tokens,
    list_llms,
    llms,
)

__all__ = [
    "DEFAULT_LLM",
    "LLM",
    "ChatMessage",
    "GenerationConfig",
    "create_llm",
    "estimate_tokens",
    "list_llms",
    "llms",
]
