"""The chat contract shared by every backend: media in messages are checked once with typed
errors, compare by content, and reach only backends that take them; token counts of the hf
backend are those of the prompt it really decodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnifuse.errors import ConfigError, InvalidValueError
from omnifuse.llm import LLM, ChatMessage, create_llm, estimate_tokens
from omnifuse.llm.hf import HFLLM

RED = Image.new("RGB", (8, 6), (255, 0, 0))
TONE = (np.sin(np.arange(1600, dtype=np.float32) / 5), 16000)


def test_media_default_to_none_and_are_kept_as_tuples() -> None:
    plain = ChatMessage("user", "Hi")
    assert plain.images == () and plain.audio == () and not plain.has_media
    wide = (TONE[0].astype(np.float64), 16000)
    message = ChatMessage("user", "Look", images=[RED], audio=[wide])  # type: ignore[arg-type]
    assert message.images == (RED,) and message.has_media
    wave, rate = message.audio[0]
    assert wave.dtype == np.float32 and rate == 16000
    np.testing.assert_allclose(wave, TONE[0])


def test_messages_compare_by_content_and_media() -> None:
    assert ChatMessage("user", "Hi") == ChatMessage("user", "Hi")
    same = ChatMessage("user", "Look", images=(RED.copy(),), audio=(TONE,))
    assert same == ChatMessage("user", "Look", images=(RED,), audio=((TONE[0].copy(), 16000),))
    assert same != ChatMessage("user", "Look", images=(Image.new("RGB", (8, 6), (0, 0, 255)),))
    assert same != ChatMessage("user", "Look", images=(RED,), audio=((TONE[0], 8000),))
    assert len({ChatMessage("user", "Hi"), ChatMessage("user", "Hi")}) == 1


@pytest.mark.parametrize(
    ("media", "pattern"),
    [
        ({"images": ("red.png",)}, r"images\[0\] must be a PIL image, got str"),
        ({"images": RED}, "images must be a tuple"),
        ({"audio": (np.zeros(10, np.float32),)}, r"audio\[0\] must be a \(wave, sample_rate\)"),
        ({"audio": ((np.zeros((10, 2), np.float32), 16000),)}, r"1-D numpy array \(mono\)"),
        ({"audio": ((np.zeros(10, np.int16), 16000),)}, "finite floats, got dtype int16"),
        ({"audio": ((np.full(10, np.nan, np.float32), 16000),)}, "finite floats"),
        ({"audio": ((np.zeros(10, np.float32), 0),)}, "sample rate must be a positive integer"),
        ({"audio": ((np.zeros(0, np.float32), 16000),)}, "non-empty"),
    ],
)
def test_bad_media_raise_typed_errors(media: dict[str, object], pattern: str) -> None:
    with pytest.raises(InvalidValueError, match=pattern):
        ChatMessage("user", "Look", **media)  # type: ignore[arg-type]


def test_only_user_messages_carry_media() -> None:
    with pytest.raises(InvalidValueError, match="only user messages"):
        ChatMessage("assistant", "I see", images=(RED,))
    with pytest.raises(ConfigError, match="chat role"):
        ChatMessage("robot", "Hi")  # type: ignore[arg-type]


def test_estimate_is_a_quarter_of_the_utf8_bytes() -> None:
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde", "café")] == [0, 1, 1, 2, 2]


@pytest.fixture(scope="module")
def tiny(tiny_hf_lm: Path) -> HFLLM:
    llm = create_llm("hf", model=tiny_hf_lm)
    assert isinstance(llm, HFLLM)
    return llm


def test_text_backend_refuses_media_instead_of_dropping_them(tiny: LLM) -> None:
    assert tiny.modalities == frozenset({"text"})
    with pytest.raises(InvalidValueError, match="hf backend cannot take images"):
        tiny.chat([ChatMessage("user", "the sky", images=(RED,))])
    with pytest.raises(InvalidValueError, match="cannot take audio clips and images"):
        tiny.count_prompt_tokens([ChatMessage("user", "the sky", images=(RED,), audio=(TONE,))])


def test_hf_prompt_tokens_are_the_decoded_prompt(tiny: HFLLM) -> None:
    messages = [ChatMessage("user", "the capital of france is")]
    ids, _ = tiny.prompt_ids(messages)
    assert tiny.count_prompt_tokens(messages) == len(ids)
    # the plain transcript adds "User: ", "\nAssistant:" and <bos> around the question
    assert tiny.count_prompt_tokens(messages) > tiny.count_tokens("the capital of france is") + 2
    assert tiny.count_tokens(" paris.") == len(tiny.tokenizer(" paris.")["input_ids"]) - 1
