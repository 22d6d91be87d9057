"""The openai backend sending images and audio as OpenAI content parts to a real server on
loopback: omnifuse's own ``omnifuse serve`` app, which perceives ``image_url`` and
``input_audio`` parts and reports what it perceived in the reply's ``omnifuse`` extra. Also: a
backend not declared to see or hear refuses media before sending anything, and the token counts
follow the server's usage when it reports one."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omnifuse.errors import ConfigError, InvalidValueError
from omnifuse.llm import ChatMessage, GenerationConfig, create_llm
from omnifuse.llm.base import estimate_tokens
from omnifuse.llm.openai_compat import OpenAICompatLLM, chat_turns

SHORT = GenerationConfig(max_tokens=12)
CARDS_UTTERANCE = Path("/usr/share/pocketsphinx/test/data/cards/001.wav")
"""pocketsphinx-testdata's recording of "ten of clubs" (Debian package, offline)."""


@pytest.fixture(scope="module")
def omnifuse_server(gguf_path: Path) -> Iterator[str]:
    """``omnifuse serve`` on a free loopback port, chatting with the default GGUF."""
    pytest.importorskip("fastapi")
    from omnifuse.serve import ServeConfig
    from omnifuse.serve.runner import BackgroundServer

    with BackgroundServer(ServeConfig(port=0)) as running:
        yield f"{running.url}/v1"


@pytest.fixture(scope="module")
def seeing(omnifuse_server: str) -> Iterator[OpenAICompatLLM]:
    llm = create_llm("openai", base_url=omnifuse_server, model="llama-cpp", vision=True, audio=True)
    assert isinstance(llm, OpenAICompatLLM)
    yield llm
    llm.close()


def red_square() -> Image.Image:
    image = Image.new("RGB", (96, 96), (255, 255, 255))
    image.paste((220, 20, 20), (24, 24, 72, 72))
    return image


def test_content_parts_carry_the_exact_media() -> None:
    image = red_square()
    wave = np.sin(np.linspace(0, 200, 8000)).astype(np.float32) * 0.5
    [turn] = chat_turns([ChatMessage("user", "Look", images=(image,), audio=((wave, 8000),))])
    text, image_part, audio_part = turn["content"]
    assert text == {"type": "text", "text": "Look"}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.tobytes() == image.tobytes()
    assert audio_part["input_audio"]["format"] == "wav"
    heard, rate = sf.read(io.BytesIO(base64.b64decode(audio_part["input_audio"]["data"])))
    assert rate == 8000
    np.testing.assert_allclose(heard, wave, atol=1 / 32767)
    assert chat_turns([ChatMessage("user", "Hi")]) == [{"role": "user", "content": "Hi"}]


def test_the_server_perceives_the_image(seeing: OpenAICompatLLM) -> None:
    question = [ChatMessage("user", "What is in this image?", images=(red_square(),))]
    answer = seeing.chat(question, SHORT)
    assert answer.strip()
    perceived = seeing.last_extras["omnifuse"]
    assert perceived["question"] == "What is in this image?"
    assert perceived["context"].startswith("Image:")  # the server's perception saw the pixels
    assert perceived["answer"]  # the closing chunk's extra merged in
    seeing.chat([ChatMessage("user", "What colour is the sky on a clear day?")], SHORT)
    assert "Image" not in (seeing.last_extras["omnifuse"]["context"] or "")


def test_the_server_hears_the_audio(seeing: OpenAICompatLLM) -> None:
    if not CARDS_UTTERANCE.is_file():
        pytest.skip("pocketsphinx-testdata is not installed")
    wave, rate = sf.read(CARDS_UTTERANCE, dtype="float32")
    question = [ChatMessage("user", "What did I say?", audio=((wave, rate),))]
    assert seeing.chat(question, SHORT).strip()
    transcript = seeing.last_extras["omnifuse"]["transcript"].lower()
    assert "clubs" in transcript


def test_undeclared_media_are_refused_before_sending(omnifuse_server: str) -> None:
    blind = create_llm("openai", base_url=omnifuse_server, model="llama-cpp")
    assert blind.modalities == frozenset({"text"})
    with pytest.raises(InvalidValueError, match="openai backend cannot take images"):
        blind.chat([ChatMessage("user", "What is this?", images=(red_square(),))])
    with pytest.raises(ConfigError, match="vision must be true or false"):
        create_llm("openai", base_url=omnifuse_server, model="llama-cpp", vision="yes")


def test_prompt_tokens_follow_the_servers_usage(seeing: OpenAICompatLLM) -> None:
    question = [ChatMessage("user", "What colour is grass?")]
    estimate = sum(estimate_tokens(f"{m.role}: {m.content}\n") for m in question)
    seeing.chat(question, SHORT)
    reported = seeing.last_usage
    if reported is None:  # the server sent no usage: the documented estimate
        assert seeing.count_prompt_tokens(question) == estimate
    else:
        assert seeing.count_prompt_tokens(question) == reported[1] > 0
    other = [ChatMessage("user", "What colour is snow?")]
    assert seeing.count_prompt_tokens(other) == estimate  # not the conversation just sent
    assert seeing.count_tokens("abcdefgh") == 2
