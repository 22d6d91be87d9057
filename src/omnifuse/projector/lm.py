"""Frozen language models as the projector sees them: token ids, input embeddings, logits.

Two kinds share one small interface (:class:`FrozenLM`): the built-in word-level decoder
(:mod:`omnifuse.projector.decoder`) and any Hugging Face causal LM read from a local folder
through :func:`omnifuse.llm.hf.load_causal_lm`, the loader of the ``hf`` backend (local files
only: nothing is downloaded).
The projector only needs to embed text ids, run the model on a mix of text embeddings and
soft-prompt vectors, and turn generated ids back into text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omnifuse.errors import ConfigError
from omnifuse.llm.gguf_hf import resolve_lm_folder
from omnifuse.llm.hf import load_causal_lm
from omnifuse.projector.decoder import DecoderLM, WordTokenizer, load_decoder

LM_KINDS = ("builtin", "hf")
HF_DTYPES = ("fp32", "bf16")
"""Weights of a frozen Hugging Face LM: full precision, or bfloat16 to halve the memory."""


class FrozenLM(ABC):
    """A causal LM whose weights never change. ``module`` is the torch model (for ``.to``)."""

    kind: str = ""
    module: nn.Module
    bos_id: int | None
    eos_id: int

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        module.requires_grad_(False)
        module.eval()

    @property
    @abstractmethod
    def embed_dim(self) -> int:
        """Width of the input embeddings (the projector's output size)."""

    @abstractmethod
    def token_ids(self, text: str) -> list[int]:
        """Text → ids, without begin/end tokens."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Ids → text, special tokens dropped."""

    @abstractmethod
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids → (B, T, E) input embeddings."""

    @abstractmethod
    def logits(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, E) input embeddings with a (B, T) mask → (B, T, V) next-token logits."""

    def logits_at(
        self, embeds: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> torch.Tensor:
        """The next-token logits at the (N,) positions ``(rows, cols)`` only → (N, V).

        Training needs logits at the target positions alone; an LM whose output layer is large
        (a 262k-word vocabulary) saves most of that layer's work by computing only those."""
        return self.logits(embeds, mask)[rows, cols]

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """How to load this LM again (stored in the projector's config)."""

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype

    def to(self, device: torch.device | str) -> FrozenLM:
        self.module.to(device)
        return self


class BuiltinLM(FrozenLM):
    """The built-in :class:`~omnifuse.projector.decoder.DecoderLM` with its word tokenizer."""

    kind = "builtin"

    def __init__(self, model: DecoderLM, tokenizer: WordTokenizer, path: Path | None = None):
        super().__init__(model)
        self.model = model
        self.tokenizer = tokenizer
        self.path = path
        self.bos_id = tokenizer.bos_id
        self.eos_id = tokenizer.eos_id

    @property
    def embed_dim(self) -> int:
        return self.model.dim

    def token_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.embed(ids)

    def logits(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(embeds, mask)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path) if self.path else None}


class HFCausalLM(FrozenLM):
    """A Hugging Face causal LM and its tokenizer from a local folder (no hub access), or a
    packaged LM by name (``gemma-3-270m``: see :mod:`omnifuse.llm.gguf_hf`)."""

    kind = "hf"

    def __init__(self, path: str | Path, *, dtype: str = "fp32") -> None:
        folder = resolve_lm_folder(path)
        if dtype not in HF_DTYPES:
            raise ConfigError(f"lm.dtype must be one of {HF_DTYPES}, got {dtype!r}")
        try:
            model, tokenizer = load_causal_lm(folder, dtype=dtype)
        except ConfigError as err:
            reason = err.__cause__ or err
            raise ConfigError(f"lm.path: cannot load a causal LM from {folder}: {reason}") from None
        super().__init__(model)
        self.model, self.tokenizer, self.dtype_name = model, tokenizer, dtype
        self.path = str(path)  # a packaged LM's name stays a name: the folder is a cache
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ConfigError(f"the tokenizer in {folder} has no end-of-sequence token")
        self.eos_id = int(eos)
        bos = tokenizer.bos_token_id
        self.bos_id = None if bos is None else int(bos)

    @property
    def embed_dim(self) -> int:
        return int(self.model.get_input_embeddings().embedding_dim)

    def token_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True)).strip()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def logits(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.model(inputs_embeds=embeds, attention_mask=mask.long(), use_cache=False)
        return out.logits

    def logits_at(
        self, embeds: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> torch.Tensor:
        decoder = self.model.get_decoder() if hasattr(self.model, "get_decoder") else None
        head = self.model.get_output_embeddings()
        config = self.model.config
        rescaled = any(getattr(config, k, None) for k in ("logit_scale", "logits_scaling"))
        if rescaled or not isinstance(decoder, nn.Module) or not isinstance(head, nn.Linear):
            return super().logits_at(embeds, mask, rows, cols)
        hidden = decoder(inputs_embeds=embeds, attention_mask=mask.long(), use_cache=False)
        logits = head(hidden.last_hidden_state[rows, cols])  # (N, V)
        cap = getattr(config, "final_logit_softcapping", None)
        if cap:  # Gemma 2 squashes its logits; the full forward does the same
            logits = torch.tanh(logits / cap) * cap
        return logits

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "dtype": self.dtype_name}


def load_frozen_lm(spec: Mapping[str, Any], *, root: Path | None = None) -> FrozenLM:
    """``{"kind": "builtin", "path": DIR}`` or ``{"kind": "hf", "path": DIR, "dtype": "fp32"}``;
    a relative builtin path is taken from ``root`` (the projector's folder)."""
    kind = spec.get("kind")
    if kind not in LM_KINDS:
        raise ConfigError(f"lm.kind must be one of {LM_KINDS}, got {kind!r}")
    if not spec.get("path"):
        raise ConfigError(f"lm.path: a {kind} LM needs the folder it is read from")
    path = Path(str(spec["path"]))
    if kind == "builtin":
        if not path.is_absolute() and root is not None:
            path = root / path
        model, tokenizer = load_decoder(path)
        return BuiltinLM(model, tokenizer, path)
    return HFCausalLM(path, dtype=str(spec.get("dtype", "fp32")))
