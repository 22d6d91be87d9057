"""Pretrained text encoders: all-MiniLM-L6-v2 and any Hugging Face text model, offline.

``tokens`` are the model's last hidden states over the real (non-padding) tokens, special tokens
included; ``pooled`` follows the model's sentence-transformers settings when its folder has them
(mean pooling and L2 normalisation for all-MiniLM-L6-v2), so embeddings equal what
sentence-transformers computes. Texts longer than ``max_length`` tokens are truncated, as
sentence-transformers does.

Weights are read only from local files (an installed package, a folder, or the Hugging Face cache
for names already downloaded): nothing is ever fetched.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import Encoder, concat_encoded, encoders
from omnifuse.encoders.tokenizer import minilm_model_dir, pad_ids, text_label, token_tensor
from omnifuse.errors import ConfigError
from omnifuse.io import load_text
from omnifuse.nn import masked_mean
from omnifuse.types import Encoded

POOLINGS = ("mean", "cls", "last")
FINETUNE_MODES = ("frozen", "last", "all")
FALLBACK_MAX_LENGTH = 512
"""Used when neither the tokenizer nor the config states a usable maximum length."""


@dataclass(frozen=True)
class PoolingSettings:
    """How a sentence-transformers folder turns token states into one sentence vector."""

    pooling: str = "mean"
    normalize: bool = False
    max_length: int | None = None


def sentence_transformers_settings(folder: Path) -> PoolingSettings:
    """Pooling, normalisation and length read from a sentence-transformers model folder.

    Folders without ``modules.json`` (plain Hugging Face models) get mean pooling, no
    normalisation and the tokenizer's own length limit.
    """
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return PoolingSettings()
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    normalize = any(str(m.get("type", "")).endswith(".Normalize") for m in modules)
    pooling = "mean"
    for module in modules:
        if str(module.get("type", "")).endswith(".Pooling"):
            pooling = _pooling_mode(folder / str(module.get("path", "")) / "config.json")
    length_file = folder / "sentence_bert_config.json"
    max_length = None
    if length_file.is_file():
        max_length = json.loads(length_file.read_text(encoding="utf-8")).get("max_seq_length")
    return PoolingSettings(pooling, normalize, None if max_length is None else int(max_length))


def _pooling_mode(config_file: Path) -> str:
    """The omnifuse name of a sentence-transformers Pooling module's mode."""
    if not config_file.is_file():
        return "mean"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    modes = {
        "pooling_mode_mean_tokens": "mean",
        "pooling_mode_cls_token": "cls",
        "pooling_mode_lasttoken": "last",
    }
    chosen = [name for key, name in modes.items() if config.get(key)]
    if len(chosen) != 1:
        raise ConfigError(f"{config_file}: unsupported sentence-transformers pooling {config}")
    return chosen[0]


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, T, D) states and (B, T) mask → (B, D): mean of real tokens, first token, or last real.

    Padding is on the right, so the last real token of a row sits at its length minus one.
    """
    if mode == "mean":
        return masked_mean(hidden, mask)
    if mode == "cls":
        return hidden[:, 0]
    last = mask.sum(dim=1).clamp(min=1) - 1  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def load_text_model(source: str) -> nn.Module:
    """The bare Hugging Face model at ``source`` (local only), without an unused pooler.

    Encoder-decoder models (T5, BART) give their encoder: only it reads the text.
    """
    from transformers import MODEL_MAPPING, AutoConfig, AutoModel

    config = _from_local(AutoConfig, source)
    with _quiet_progress():
        model = _from_local(AutoModel, source, config=config)
    model_class: Any = MODEL_MAPPING.get(type(config), None)
    if model_class is not None and _accepts(model_class, "add_pooling_layer"):
        model.pooler = None  # what add_pooling_layer=False builds; its forward skips a None pooler
    if getattr(config, "is_encoder_decoder", False):
        model = model.get_encoder()
    return model


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide transformers' per-load progress bar, restoring the user's setting afterwards."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _accepts(model_class: Any, argument: str) -> bool:
    return isinstance(model_class, type) and argument in inspect.signature(model_class).parameters


def _from_local(factory: Any, source: str, **options: Any) -> Any:
    """``factory.from_pretrained`` from local files only, with a clear error when absent."""
    try:
        return factory.from_pretrained(source, local_files_only=True, **options)
    except OSError as err:
        raise ConfigError(
            f"text model {source!r} is not available locally ({err}); omnifuse never downloads: "
            "pass a folder holding the model or a name already in the Hugging Face cache"
        ) from None


def last_block(model: nn.Module) -> nn.Module:
    """The final layer of the model's main stack: the last item of its largest layer list."""
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not stacks:
        raise ConfigError(f"{type(model).__name__} has no layer list; use finetune='all'")
    largest = max(stacks, key=lambda stack: sum(p.numel() for p in stack.parameters()))
    return largest[-1]


def apply_finetune(model: nn.Module, mode: str) -> None:
    """``frozen``: no parameter trains; ``last``: only the final layer; ``all``: everything."""
    model.requires_grad_(mode == "all")
    if mode == "last":
        last_block(model).requires_grad_(True)


@encoders.register("hf-text")
class HFTextEncoder(Encoder):
    """Any Hugging Face text model by local path or cached name; frozen or fine-tuned.

    ``pooling`` is ``"mean"`` (real tokens), ``"cls"`` (first token) or ``"last"`` (last real
    token, for decoder-only models); ``None`` takes the folder's sentence-transformers setting or
    ``"mean"``. ``normalize`` L2-normalises ``pooled`` (``None``: the folder's setting or no).
    ``finetune="last"`` trains only the final layer, ``"all"`` every weight.
    """

    modality = "text"

    def __init__(
        self,
        model: str | Path,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        finetune: str = "frozen",
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        source = str(model)
        settings = sentence_transformers_settings(Path(source))
        self.pooling = settings.pooling if pooling is None else pooling
        self.normalize = settings.normalize if normalize is None else normalize
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_choice("finetune", finetune, FINETUNE_MODES)
        from transformers import AutoTokenizer

        self.tokenizer = _from_local(AutoTokenizer, source)
        self.model = load_text_model(source)
        self.max_length = _resolve_max_length(
            max_length or settings.max_length, self.tokenizer, self.model
        )
        pad = self.tokenizer.pad_token_id
        self.pad_id = 0 if pad is None else int(pad)
        self.dim = int(_model_config(self.model).hidden_size)
        self.finetune = finetune
        self.trainable = finetune != "frozen"
        apply_finetune(self.model, finetune)
        self.finish_setup()

    def preprocess(self, raw: Any) -> dict[str, torch.Tensor]:
        """One text (str, UTF-8 bytes or a file path) → 1-D ``input_ids`` and ``attention_mask``."""
        return self._tokenize([load_text(raw)], [raw])[0]

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Right-pad with the tokenizer's pad id; ``mask`` is True on real tokens."""
        ids, mask = pad_ids([item["input_ids"] for item in items], self.pad_id)
        return {"input_ids": ids, "attention_mask": mask.long(), "mask": mask}

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        hidden = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state  # (B, T, D)
        mask = batch["mask"]
        pooled = pool(hidden.float(), mask, self.pooling)  # (B, D), float32 even under bf16
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return Encoded(hidden, mask, pooled)

    def encode(self, raws: Sequence[Any], *, batch_size: int = 32) -> Encoded:
        """As :meth:`Encoder.encode`; a list of str is tokenised in one tokenizer call.

        Tokenising texts together gives the same ids as one by one, so results are identical.
        """
        if not raws or not all(isinstance(raw, str) for raw in raws):
            return super().encode(raws, batch_size=batch_size)
        items = self._tokenize([load_text(raw) for raw in raws], raws)
        grad = self.trainable and self.training
        with torch.set_grad_enabled(grad):
            parts = [
                self.run_batch(self.collate(items[start : start + batch_size]))
                for start in range(0, len(items), batch_size)
            ]
        out = concat_encoded(parts)
        return out if grad else out.to("cpu", torch.float32)

    def _tokenize(self, texts: list[str], raws: Sequence[Any]) -> list[dict[str, torch.Tensor]]:
        """Texts → truncated id tensors (special tokens added as the model expects)."""
        rows = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        items = []
        for ids, raw in zip(rows, raws, strict=True):
            tensor = token_tensor(ids, max_length=self.max_length, source=text_label(raw))
            items.append({"input_ids": tensor, "attention_mask": torch.ones_like(tensor)})
        return items

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, pooling={self.pooling}, normalize={self.normalize}, "
            f"max_length={self.max_length}, finetune={self.finetune}"
        )


@encoders.register("minilm")
class MiniLMEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) from the installed package.

    Pooling, normalisation and the 256-token limit come from the package's sentence-transformers
    files, so ``pooled`` equals sentence-transformers' ``encode`` output.
    """

    def __init__(
        self,
        *,
        max_length: int | None = None,
        finetune: str = "frozen",
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(
            minilm_model_dir(), max_length=max_length, finetune=finetune, device=device, dtype=dtype
        )


def _resolve_max_length(requested: int | None, tokenizer: Any, model: nn.Module) -> int:
    """The requested length, else the tokenizer's limit, else the model's position table."""
    limit = getattr(_model_config(model), "max_position_embeddings", None)
    if requested is not None:
        if requested < 1 or (limit is not None and requested > limit):
            raise ConfigError(f"max_length {requested} must be in 1..{limit or 'inf'}")
        return int(requested)
    own = getattr(tokenizer, "model_max_length", None)
    if isinstance(own, int) and 0 < own <= 1_000_000:
        return own if limit is None else min(own, int(limit))
    return int(limit) if limit is not None else FALLBACK_MAX_LENGTH


def _model_config(model: nn.Module) -> Any:
    """The Hugging Face config of ``model``."""
    return model.config


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{option} {value!r} is not one of {', '.join(choices)}")
