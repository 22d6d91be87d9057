"""The hf-vision backend on a tiny random-weight LLaVA saved here: its chat sees the image (the
logits change with it), greedy decoding equals transformers' own ``generate`` and repeats
exactly, and the prompt's token count includes the image's patch tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer
from vlm_kit import VLM_IMAGE_TOKENS, build_tiny_vlm

from omnifuse.errors import ConfigError, EmptyInputError, InvalidValueError
from omnifuse.llm import ChatMessage, GenerationConfig, create_llm
from omnifuse.llm.hf_vision import HFVisionLLM

GREEDY = GenerationConfig(max_tokens=8)
QUESTION = "what is in the picture?"


@pytest.fixture(scope="module")
def vlm(tiny_vlm: Path) -> HFVisionLLM:
    llm = create_llm("hf-vision", model=tiny_vlm)
    assert isinstance(llm, HFVisionLLM)
    return llm


def square(colour: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (48, 40), (255, 255, 255))
    image.paste(colour, (8, 8, 40, 32))
    return image


RED, BLUE = square((220, 20, 20)), square((20, 20, 220))


def ask(image: Image.Image | None) -> list[ChatMessage]:
    return [ChatMessage("user", QUESTION, images=() if image is None else (image,))]


def next_token_logits(vlm: HFVisionLLM, messages: list[ChatMessage]) -> torch.Tensor:
    with torch.inference_mode():
        return vlm.model(**vlm.prompt_inputs(messages)).logits[0, -1]


def test_takes_images_but_not_audio(vlm: HFVisionLLM) -> None:
    assert vlm.modalities == frozenset({"text", "image"})  # a LLaVA processor has no audio part
    clip = (np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(InvalidValueError, match="cannot take audio clips"):
        vlm.chat([ChatMessage("user", QUESTION, audio=(clip,))])


def test_the_image_changes_the_logits(vlm: HFVisionLLM) -> None:
    red, blue = next_token_logits(vlm, ask(RED)), next_token_logits(vlm, ask(BLUE))
    assert torch.equal(red, next_token_logits(vlm, ask(RED)))
    assert (red - blue).abs().max() > 1e-3
    assert red.shape == blue.shape == (len(vlm.tokenizer),)


def test_greedy_chat_equals_transformers_generate(vlm: HFVisionLLM) -> None:
    for image in (RED, BLUE):
        messages = ask(image)
        answer = vlm.chat(messages, GREEDY)
        assert answer == vlm.chat(messages, GREEDY)  # deterministic
        inputs = vlm.prompt_inputs(messages)
        with torch.inference_mode():
            out = vlm.model.generate(**inputs, max_new_tokens=8, do_sample=False)
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        assert len(new_tokens) > 0
        assert answer == vlm.tokenizer.decode(new_tokens, skip_special_tokens=True)
        assert "".join(vlm.chat_stream(messages, GREEDY)) == answer


def test_prompt_tokens_include_the_image_patches(vlm: HFVisionLLM) -> None:
    with_image = vlm.count_prompt_tokens(ask(RED))
    without = vlm.count_prompt_tokens(ask(None))
    assert with_image == without + VLM_IMAGE_TOKENS  # one <image> placeholder → 16 patches
    assert with_image == vlm.prompt_inputs(ask(RED))["input_ids"].shape[-1]
    assert without > vlm.count_tokens(QUESTION) >= 1
    two = [ChatMessage("user", QUESTION, images=(RED, BLUE))]
    assert vlm.count_prompt_tokens(two) == without + 2 * VLM_IMAGE_TOKENS


def test_text_only_chat_and_raw_prompt(vlm: HFVisionLLM) -> None:
    assert vlm.chat(ask(None), GREEDY) == vlm.chat(ask(None), GREEDY)
    assert vlm.generate("a red", GREEDY) == vlm.generate("a red", GREEDY)
    with pytest.raises(EmptyInputError):
        vlm.chat([])
    with pytest.raises(EmptyInputError):
        vlm.generate("")
    with pytest.raises(ConfigError, match="no extra generation options"):
        vlm.chat(ask(RED), GenerationConfig(extra={"top_k": 3}))


def test_missing_folder_and_folder_without_template(tiny_vlm: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="could not be loaded from local files"):
        create_llm("hf-vision", model=tmp_path / "absent")
    bare = tmp_path / "bare"
    tokenizer = AutoTokenizer.from_pretrained(tiny_vlm)
    tokenizer.chat_template = None  # the saved tokenizer carries the processor's template
    build_tiny_vlm(bare, tokenizer, chat_template=None)
    with pytest.raises(ConfigError, match="no chat template"):
        create_llm("hf-vision", model=bare)
    with pytest.raises(ConfigError, match="dtype"):
        create_llm("hf-vision", model=bare, dtype="int3")
