"""Hugging Face vision-language backend (name ``hf-vision``): an image-text-to-text model (LLaVA,
Gemma 3, Qwen2.5-VL, SmolVLM, Idefics…) by local path, seeing the images of user messages.

The model loads through ``AutoModelForImageTextToText`` and its processor through
``AutoProcessor``, from local files only (a folder written by ``save_pretrained`` or a name
already in the Hugging Face cache). A conversation goes through the processor's chat template
with ``image`` entries (and ``audio`` entries when the processor has a feature extractor, as
Gemma 3n's or Phi-4-multimodal's do), so the image tokens land where the model expects them.
Decoding is an explicit loop with the KV cache, as in the ``hf`` backend: the first step reads
the pixels, later steps only the new token, and greedy output equals ``model.generate``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omnifuse.errors import ConfigError, EmptyInputError, InputError, InputTooLargeError
from omnifuse.llm.base import LLM, ChatMessage, GenerationConfig, llms
from omnifuse.llm.deps import require
from omnifuse.llm.hf import DTYPES, context_length, eos_token_ids, load_pretrained, pick_token
from omnifuse.llm.media import AudioClip
from omnifuse.llm.text_stream import StopScanner, TokenDecoder


@llms.register("hf-vision")
class HFVisionLLM(LLM):
    """An image-text-to-text ``transformers`` model that sees the images in user messages."""

    name = "hf-vision"

    def __init__(
        self,
        model: str | Path,
        *,
        processor: str | Path | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        max_context: int | None = None,
    ) -> None:
        """``processor`` defaults to the model's own folder; ``max_context`` to the language
        model's position limit."""
        if dtype not in DTYPES:
            raise ConfigError(f"hf-vision dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        torch: Any = require("torch", "PyTorch")
        transformers: Any = require("transformers", "transformers")
        self.model_name = str(model)
        self.processor = load_pretrained(
            transformers.AutoProcessor, processor or model, "processor"
        )
        self.tokenizer: Any = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ConfigError(f"hf-vision processor of {self.model_name!r} has no tokenizer")
        if not getattr(self.processor, "chat_template", None):
            raise ConfigError(
                f"hf-vision model {self.model_name!r} has no chat template in its processor: "
                "the template is what places the image tokens in the prompt"
            )
        self.model = load_pretrained(
            transformers.AutoModelForImageTextToText,
            model,
            "image-text-to-text model",
            dtype=getattr(torch, DTYPES[dtype]),
        )
        self.model.to(device).eval()
        self.device = torch.device(device)
        text_config = getattr(self.model.config, "text_config", None) or self.model.config
        self.max_context = max_context or context_length(text_config)
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)
        extractor = getattr(self.processor, "feature_extractor", None)
        self.audio_rate: int | None = getattr(extractor, "sampling_rate", None)
        self._torch = torch
        self._lock = threading.Lock()

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset({"text", "image"} | ({"audio"} if self.audio_rate else set()))

    def stream(self, prompt: str, config: GenerationConfig | None = None) -> Iterator[str]:
        if not prompt:
            raise EmptyInputError("the prompt is empty", modality="text")
        inputs = dict(self.tokenizer(prompt, return_tensors="pt"))
        return self._decode(inputs, config or GenerationConfig())

    def chat_stream(
        self, messages: Sequence[ChatMessage], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        return self._decode(self.prompt_inputs(messages), config or GenerationConfig())

    def prompt_inputs(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        """The processor's tensors for the conversation: token ids with the image tokens in
        place, attention mask, pixel values (and audio features), ready for the model."""
        if not messages:
            raise EmptyInputError("the conversation has no messages", modality="text")
        self.check_messages(messages)
        turns = [
            {"role": m.role, "content": self._content(m.content, m.images, m.audio)}
            for m in messages
        ]
        try:
            inputs = self.processor.apply_chat_template(
                turns,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
        except (ValueError, TypeError, KeyError) as exc:  # template errors, image/text mismatch
            reason = f"the processor refused the conversation: {exc}"
            raise InputError(reason, modality="text") from exc
        return dict(inputs)

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """The prompt's tokens exactly as ``chat`` sends it, each image's tokens included."""
        return int(self.prompt_inputs(messages)["input_ids"].shape[-1])

    def _content(
        self, text: str, images: Sequence[Any], audio: Sequence[AudioClip]
    ) -> list[dict[str, Any]]:
        """Media first, then the text: the order most VLM chat templates were trained with."""
        parts: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
        parts += [{"type": "audio", "audio": self._resampled(clip)} for clip in audio]
        parts.append({"type": "text", "text": text})
        return parts

    def _resampled(self, clip: AudioClip) -> Any:
        from omnifuse.io.resample import resample

        wave, rate = clip
        assert self.audio_rate is not None
        return wave if rate == self.audio_rate else resample(wave, rate, self.audio_rate)

    def _decode(self, inputs: dict[str, Any], config: GenerationConfig) -> Iterator[str]:
        length = int(inputs["input_ids"].shape[-1])
        if length == 0:
            raise EmptyInputError("the prompt encodes to no tokens", modality="text")
        if length >= self.max_context:
            raise InputTooLargeError(
                f"the prompt takes {length} tokens but the model's context holds "
                f"{self.max_context}",
                modality="text",
            )
        if config.extra:
            raise ConfigError(f"hf-vision takes no extra generation options: {config.extra}")
        budget = min(config.max_tokens, self.max_context - length)
        return self._locked(inputs, budget, config, StopScanner(config.stop))

    def _locked(
        self, inputs: dict[str, Any], budget: int, config: GenerationConfig, scanner: StopScanner
    ) -> Iterator[str]:
        with self._lock, self._torch.inference_mode():
            decoder = TokenDecoder(self.tokenizer)
            for token in self._tokens(inputs, budget, config):
                piece = scanner.feed(decoder.add(token))
                if piece:
                    yield piece
                if scanner.stopped:
                    return
            tail = scanner.feed(decoder.flush()) + scanner.finish()
            if tail:
                yield tail

    def _tokens(
        self, inputs: dict[str, Any], budget: int, config: GenerationConfig
    ) -> Iterator[int]:
        """Sampled token ids: one forward pass over the whole prompt (pixels included), then
        one per new token on the KV cache; stops at EOS."""
        torch = self._torch
        generator = torch.Generator(device=self.device).manual_seed(config.seed)
        # pixel values and audio features in the model's dtype, ids and masks as they are
        step = {
            key: value.to(self.device, self.model.dtype if value.is_floating_point() else None)
            for key, value in inputs.items()
        }
        mask = step.pop("attention_mask", None)
        if mask is None:
            mask = torch.ones_like(step["input_ids"])
        for _ in range(budget):
            out = self.model(**step, attention_mask=mask, use_cache=True)
            token = pick_token(out.logits[0, -1].float(), config, generator)
            if token in self.eos_ids:
                return
            yield token
            mask = torch.cat([mask, mask.new_ones((1, 1))], dim=-1)
            step = {
                "input_ids": torch.tensor([[token]], device=self.device),
                "past_key_values": out.past_key_values,
            }
