"""The hf backend on a tiny Llama trained here, checked against transformers' own generate."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from omnifuse.errors import ConfigError, EmptyInputError, InputTooLargeError
from omnifuse.llm import ChatMessage, GenerationConfig, create_llm
from omnifuse.llm.hf import HFLLM
from omnifuse.llm.text_stream import StopScanner, TokenDecoder

GREEDY = GenerationConfig(max_tokens=12)
TURNS_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny(tiny_hf_lm: Path) -> HFLLM:
    llm = create_llm("hf", model=tiny_hf_lm)
    assert isinstance(llm, HFLLM)
    return llm


@functools.cache
def reference_model(folder: Path) -> tuple[Any, Any]:
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    return tokenizer, model


def reference_generate(folder: Path, prompt: str, max_new_tokens: int) -> str:
    """What transformers' own greedy ``generate`` continues ``prompt`` with."""
    tokenizer, model = reference_model(folder)
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = out[0, inputs["input_ids"].shape[1] :]
    return str(tokenizer.decode(new_tokens, skip_special_tokens=True))


def test_recites_what_it_learnt(tiny: HFLLM) -> None:
    assert tiny.generate("the capital of france is", GREEDY) == " paris."
    assert tiny.generate("the capital of italy is", GREEDY) == " rome."


@pytest.mark.parametrize("prompt", ["the capital of france is", "café", "the sky", "grass"])
def test_greedy_equals_transformers_generate(tiny: HFLLM, tiny_hf_lm: Path, prompt: str) -> None:
    assert tiny.generate(prompt, GREEDY) == reference_generate(tiny_hf_lm, prompt, 12)


def test_stream_splits_into_token_pieces(tiny: HFLLM) -> None:
    pieces = list(tiny.stream("café", GenerationConfig(max_tokens=20)))
    assert len(pieces) > 2
    assert "".join(pieces) == " au lait costs three euros."


def test_stop_string_spanning_tokens(tiny: HFLLM) -> None:
    text = tiny.generate("the capital of france is", GenerationConfig(12, stop=("ari",)))
    assert text == " p"
    text = tiny.generate("the sky", GenerationConfig(20, stop=("and the", "grass")))
    assert text == " is blue "


def test_max_tokens_counts_tokens(tiny: HFLLM) -> None:
    text = tiny.generate("the sky", GenerationConfig(max_tokens=3))
    assert tiny.count_tokens(text) == 3
    assert " is blue and the grass is green.".startswith(text)


def test_sampling_follows_the_seed_and_top_p(tiny: HFLLM) -> None:
    def sample(seed: int, top_p: float = 1.0, temperature: float = 3.0) -> str:
        config = GenerationConfig(10, temperature, top_p, seed=seed)
        return tiny.generate("the", config)

    assert sample(0) == sample(0)
    assert len({sample(seed) for seed in range(4)}) > 1
    greedy = tiny.generate("the", GenerationConfig(max_tokens=10))
    assert sample(1, top_p=1e-6) == sample(2, top_p=1e-6) == greedy  # nucleus of one token


def test_chat_without_template_is_a_plain_transcript(tiny: HFLLM) -> None:
    messages = [ChatMessage("system", "be brief"), ChatMessage("user", "hi")]
    prompt, stops = tiny.render_chat(messages)
    assert prompt == "System: be brief\nUser: hi\nAssistant:"
    assert "\nUser:" in stops
    answer = tiny.chat(messages, GenerationConfig(max_tokens=30))
    assert "\nUser:" not in answer
    assert answer == tiny.generate(prompt, GenerationConfig(30, stop=stops))


def test_chat_uses_the_tokenizer_template(tiny_hf_lm: Path, tmp_path: Path) -> None:
    folder = tmp_path / "templated"
    shutil.copytree(tiny_hf_lm, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.chat_template = TURNS_TEMPLATE
    tokenizer.save_pretrained(folder)
    llm = create_llm("hf", model=folder)
    assert isinstance(llm, HFLLM)
    messages = [ChatMessage("user", "the capital of france is")]
    prompt, stops = llm.render_chat(messages)
    assert (prompt, stops) == ("<bos><user>the capital of france is\n<assistant>", ())
    # the template already holds <bos>: the chat prompt must not get a second one
    expected = reference_generate(folder, prompt.removeprefix("<bos>"), 8)
    assert llm.chat(messages, GenerationConfig(max_tokens=8)) == expected


def test_bad_configs_and_prompts(tiny: HFLLM, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="could not be loaded from local files"):
        create_llm("hf", model=tmp_path / "absent")
    with pytest.raises(ConfigError, match="dtype"):
        create_llm("hf", model=tmp_path, dtype="int3")
    with pytest.raises(EmptyInputError):
        tiny.generate("")
    with pytest.raises(EmptyInputError):
        tiny.chat([])
    with pytest.raises(InputTooLargeError, match="context holds 128"):
        tiny.generate("the sky " * 100)
    with pytest.raises(ConfigError, match="no extra generation options"):
        tiny.generate("the", GenerationConfig(extra={"top_k": 5}))


def test_context_end_bounds_generation(tiny_hf_lm: Path) -> None:
    llm = create_llm("hf", model=tiny_hf_lm, max_context=8)
    prompt_tokens = len(llm.tokenizer("the sky")["input_ids"])  # type: ignore[attr-defined]
    text = llm.generate("the sky", GenerationConfig(max_tokens=50))
    assert text == reference_generate(tiny_hf_lm, "the sky", 8 - prompt_tokens)


class CharTokenizer:
    """Token id = byte value; decoding invalid UTF-8 gives U+FFFD like real tokenizers."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def test_token_decoder_waits_for_whole_characters() -> None:
    decoder = TokenDecoder(CharTokenizer())
    pieces = [decoder.add(b) for b in "né €".encode()]
    assert "".join(pieces) + decoder.flush() == "né €"
    assert "\ufffd" not in "".join(pieces)
    assert pieces[1] == "" and pieces[2] == "é"  # the first byte of é waits for the second


def test_stop_scanner_holds_back_possible_stop_prefixes() -> None:
    scanner = StopScanner(["STOP"])
    assert scanner.feed("ab S") == "ab "
    assert scanner.feed("T") == ""
    assert scanner.feed("x") == "STx"
    assert scanner.feed("yST") == "y"
    assert scanner.feed("OP and more") == ""
    assert scanner.stopped and scanner.feed("z") == "" and scanner.finish() == ""
    tail = StopScanner(["END"])
    assert tail.feed("fin E") == "fin "
    assert tail.finish() == "E"
