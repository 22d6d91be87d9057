"""Hugging Face backend (name ``hf``): any ``transformers`` causal LM by local path or cached name.

Files are read with ``local_files_only=True``: a model is used only if it is on disk (a folder
written by ``save_pretrained`` or a name already in the Hugging Face cache), never downloaded.
Decoding is an explicit loop over the model with its KV cache, so text streams out token by token
without a helper thread, and greedy output equals ``model.generate(do_sample=False)``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omnifuse.errors import ConfigError, EmptyInputError, InputError, InputTooLargeError
from omnifuse.llm.base import LLM, ChatMessage, GenerationConfig, llms
from omnifuse.llm.chat_templates import plain_transcript
from omnifuse.llm.deps import require
from omnifuse.llm.text_stream import StopScanner, TokenDecoder

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


@llms.register("hf")
class HFLLM(LLM):
    """A ``transformers`` causal LM loaded from a local folder or the local Hugging Face cache."""

    name = "hf"

    def __init__(
        self,
        model: str | Path,
        *,
        tokenizer: str | Path | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        max_context: int | None = None,
    ) -> None:
        self.model_name = str(model)
        self.model, self.tokenizer = load_causal_lm(model, tokenizer=tokenizer, dtype=dtype)
        torch: Any = require("torch", "PyTorch")
        self.model.to(device).eval()
        self.device = torch.device(device)
        self.max_context = max_context or context_length(self.model.config)
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)
        self._torch = torch
        self._lock = threading.Lock()

    def stream(self, prompt: str, config: GenerationConfig | None = None) -> Iterator[str]:
        if not prompt:
            raise EmptyInputError("the prompt is empty", modality="text")
        ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return self._decode(list(ids), config or GenerationConfig(), ())

    def chat_stream(
        self, messages: Sequence[ChatMessage], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        ids, extra_stops = self.prompt_ids(messages)
        return self._decode(ids, config or GenerationConfig(), extra_stops)

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> tuple[list[int], tuple[str, ...]]:
        """The token ids of the rendered conversation and the stop strings its format needs."""
        if not messages:
            raise EmptyInputError("the conversation has no messages", modality="text")
        self.check_messages(messages)
        prompt, extra_stops = self.render_chat(messages)
        # a chat template writes the special tokens itself; a plain transcript is a raw prompt
        templated = bool(getattr(self.tokenizer, "chat_template", None))
        ids = self.tokenizer(prompt, add_special_tokens=not templated)["input_ids"]
        return list(ids), extra_stops

    def render_chat(self, messages: Sequence[ChatMessage]) -> tuple[str, tuple[str, ...]]:
        """The prompt text for a conversation and the stop strings its format needs.

        The tokenizer's chat template when it has one; otherwise a plain ``User:``/``Assistant:``
        transcript that stops when the model starts writing the next turn.
        """
        if not getattr(self.tokenizer, "chat_template", None):
            return plain_transcript([(m.role, m.content) for m in messages])
        turns = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text = self.tokenizer.apply_chat_template(
                turns, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # the template's own raise_exception, or a Jinja error
            reason = f"the chat template refused the conversation: {exc}"
            raise InputError(reason, modality="text") from exc
        return str(text), ()

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """How many tokens the conversation's prompt takes, exactly as ``chat`` sends it."""
        return len(self.prompt_ids(messages)[0])

    def _decode(
        self, ids: list[int], config: GenerationConfig, extra_stops: tuple[str, ...]
    ) -> Iterator[str]:
        if not ids:
            raise EmptyInputError("the prompt encodes to no tokens", modality="text")
        if len(ids) >= self.max_context:
            raise InputTooLargeError(
                f"the prompt takes {len(ids)} tokens but the model's context holds "
                f"{self.max_context}",
                modality="text",
            )
        if config.extra:
            raise ConfigError(f"the hf backend takes no extra generation options: {config.extra}")
        budget = min(config.max_tokens, self.max_context - len(ids))
        scanner = StopScanner((*config.stop, *extra_stops))
        return self._locked(ids, budget, config, scanner)

    def _locked(
        self, ids: list[int], budget: int, config: GenerationConfig, scanner: StopScanner
    ) -> Iterator[str]:
        with self._lock, self._torch.inference_mode():
            decoder = TokenDecoder(self.tokenizer)
            for token in self._tokens(ids, budget, config):
                piece = scanner.feed(decoder.add(token))
                if piece:
                    yield piece
                if scanner.stopped:
                    return
            tail = scanner.feed(decoder.flush()) + scanner.finish()
            if tail:
                yield tail

    def _tokens(self, ids: list[int], budget: int, config: GenerationConfig) -> Iterator[int]:
        """Sampled token ids, one forward pass each, reusing the KV cache; stops at EOS."""
        torch = self._torch
        generator = torch.Generator(device=self.device).manual_seed(config.seed)
        inputs = torch.tensor([ids], device=self.device)
        past = None
        for _ in range(budget):
            out = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = pick_token(out.logits[0, -1].float(), config, generator)
            if token in self.eos_ids:
                return
            yield token
            inputs = torch.tensor([[token]], device=self.device)


def pick_token(logits: Any, config: GenerationConfig, generator: Any) -> int:
    """Greedy at temperature 0; otherwise temperature + nucleus (top-p) sampling."""
    import torch

    if config.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / config.temperature, dim=-1)
    if config.top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= config.top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def load_causal_lm(
    model: str | Path, *, tokenizer: str | Path | None = None, dtype: str = "float32"
) -> tuple[Any, Any]:
    """A causal LM and its tokenizer (``tokenizer`` defaults to the model's own) from local files.

    The one place omnifuse reads a Hugging Face LM: the ``hf`` backend and the projector's frozen
    LM both load through it, so both accept the same folders and cache names, and fail alike.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"hf dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    torch: Any = require("torch", "PyTorch")
    transformers: Any = require("transformers", "transformers")
    loaded_tokenizer = load_pretrained(transformers.AutoTokenizer, tokenizer or model, "tokenizer")
    loaded_model = load_pretrained(
        transformers.AutoModelForCausalLM, model, "model", dtype=getattr(torch, DTYPES[dtype])
    )
    return loaded_model, loaded_tokenizer


def load_pretrained(factory: Any, source: str | Path, what: str, **kwargs: Any) -> Any:
    """``factory.from_pretrained`` on local files only, with a ConfigError when absent."""
    try:
        return factory.from_pretrained(str(source), local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"hf {what} {str(source)!r} could not be loaded from local files (a folder saved "
            f"with save_pretrained, or a name already in the Hugging Face cache): {exc}"
        ) from exc


def context_length(model_config: Any) -> int:
    """The longest sequence the model was built for (2048 when its config does not say)."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(model_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def eos_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Every end-of-sequence id the generation config or the tokenizer names."""
    ids: set[int] = set()
    generation = getattr(model, "generation_config", None)
    for value in (getattr(generation, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return frozenset(ids)
