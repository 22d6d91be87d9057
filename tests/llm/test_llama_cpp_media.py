"""The llama-cpp backend's token counts (checked against llama-cpp-python's own ``usage``) and its
``mmproj`` option. No vision GGUF and projector ship offline, so the projector is checked only
for what can be checked honestly: a missing, foreign or corrupt file fails at start-up with a
ConfigError naming it; seeing images needs a user's own GGUF + mmproj pair."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from omnifuse.errors import ConfigError, InvalidValueError
from omnifuse.llm import LLM, ChatMessage, create_llm
from omnifuse.llm.chat_templates import plain_transcript

CONVERSATION = [
    ChatMessage("system", "Answer in one word."),
    ChatMessage("user", "What colour is the sky?"),
    ChatMessage("assistant", "Blue."),
    ChatMessage("user", "And the grass, café-side?"),
]
GEMMA_TURNS = CONVERSATION[1:]
"""Gemma's template folds a system message into the first user turn; its turns alternate."""


def turns(messages: list[ChatMessage]) -> list[Any]:
    return [{"role": m.role, "content": m.content} for m in messages]


def test_plain_transcript_count_equals_what_llama_cpp_evaluates(gemma: LLM) -> None:
    prompt, _ = plain_transcript([(m.role, m.content) for m in CONVERSATION])
    served = gemma.llama.create_completion(prompt, max_tokens=1)  # type: ignore[attr-defined]
    assert gemma.count_prompt_tokens(CONVERSATION) == served["usage"]["prompt_tokens"]
    assert gemma.count_tokens("What colour is the sky?") == 6  # What·colour·is·the·sky·?
    assert gemma.count_prompt_tokens(CONVERSATION[1:2]) < gemma.count_prompt_tokens(CONVERSATION)


@pytest.mark.parametrize(
    ("options", "messages"),
    [({"chat_template": "gemma"}, GEMMA_TURNS), ({"chat_format": "chatml"}, CONVERSATION)],
)
def test_templated_count_equals_chat_completion_usage(
    gguf_path: Path, options: dict[str, str], messages: list[ChatMessage]
) -> None:
    llm = create_llm("llama-cpp", model_path=gguf_path, n_ctx=512, **options)
    try:
        served = llm.llama.create_chat_completion(turns(messages), max_tokens=1)  # type: ignore[attr-defined]
        count = llm.count_prompt_tokens(messages)
        assert count == served["usage"]["prompt_tokens"]
        assert count > sum(llm.count_tokens(m.content) for m in messages)  # turn markers count
    finally:
        llm.close()


def test_text_only_model_refuses_images_and_audio(gemma: LLM) -> None:
    assert gemma.modalities == frozenset({"text"})
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    with pytest.raises(InvalidValueError, match="llama-cpp backend cannot take images"):
        gemma.chat([ChatMessage("user", "What is this?", images=(image,))])
    clip = (np.zeros(800, dtype=np.float32), 8000)
    with pytest.raises(InvalidValueError, match="cannot take audio clips"):
        gemma.count_prompt_tokens([ChatMessage("user", "What is this?", audio=(clip,))])


def named(path: Path) -> str:
    return re.escape(repr(str(path)))


def test_bad_mmproj_files_fail_at_start_naming_them(gguf_path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "mmproj.gguf"
    with pytest.raises(ConfigError, match=f"mmproj file not found: {named(missing)}"):
        create_llm("llama-cpp", model_path=gguf_path, mmproj=missing)
    text = tmp_path / "notes.gguf"
    text.write_text("not a projector")
    with pytest.raises(ConfigError, match=f"mmproj {named(text)} is not a GGUF file"):
        create_llm("llama-cpp", model_path=gguf_path, mmproj=text)
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + np.random.default_rng(0).bytes(4096))
    # a valid GGUF that is a language model, not a projector, is refused the same way
    for wrong in (corrupt, gguf_path):
        with pytest.raises(
            ConfigError, match=f"could not load the mmproj projector {named(wrong)}"
        ):
            create_llm("llama-cpp", model_path=gguf_path, n_ctx=256, mmproj=wrong)


def test_mmproj_options_are_checked(gguf_path: Path) -> None:
    with pytest.raises(ConfigError, match="drop chat_template"):
        create_llm("llama-cpp", model_path=gguf_path, mmproj=gguf_path, chat_template="gemma")
    with pytest.raises(ConfigError, match="mmproj_handler must be one of"):
        create_llm(
            "llama-cpp", model_path=gguf_path, n_ctx=256, mmproj=gguf_path, mmproj_handler="x"
        )
