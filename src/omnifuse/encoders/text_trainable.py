"""Text encoders trained from scratch: a GRU and a small Transformer over token embeddings.

Both read ids from :mod:`omnifuse.encoders.tokenizer` (MiniLM's WordPiece vocabulary by default,
``tokenizer="bytes"`` for byte-level ids), return one token state per real token with padding
positions zeroed, and pool with the masked mean, so padding never changes a sample's result.
Texts longer than ``max_length`` tokens are truncated.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.encoders.tokenizer import create_tokenizer, pad_ids, text_label, token_tensor
from omnifuse.errors import ConfigError
from omnifuse.io import load_text
from omnifuse.nn import masked_mean
from omnifuse.types import Encoded


class TokenTextEncoder(Encoder):
    """Shared tokenisation, batching and pooling of the trainable text encoders, and the options
    they all take (``dim``, ``tokenizer``, ``max_length``, ``device``, ``dtype``), which
    subclasses pass on as ``**common``."""

    modality = "text"
    trainable = True

    def __init__(
        self,
        *,
        dim: int = 128,
        tokenizer: str = "wordpiece",
        max_length: int = 256,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        if dim < 1 or max_length < 1:
            raise ConfigError(f"dim ({dim}) and max_length ({max_length}) must be positive")
        self.tokenizer = create_tokenizer(tokenizer)
        self.tokenizer_name = tokenizer
        self.max_length = max_length
        self.dim = dim
        self.embed = nn.Embedding(self.tokenizer.vocab_size, dim, padding_idx=self.tokenizer.pad_id)

    def preprocess(self, raw: Any) -> torch.Tensor:
        """One text (str, UTF-8 bytes or a file path) → 1-D token ids, truncated."""
        text = load_text(raw)
        ids = self.tokenizer.encode_batch([text])[0]
        return token_tensor(ids, max_length=self.max_length, source=text_label(raw))

    def collate(self, items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        ids, mask = pad_ids(items, self.tokenizer.pad_id)
        return {"input_ids": ids, "mask": mask}

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        mask = batch["mask"]  # (B, T)
        states = self.contextualize(self.embed(batch["input_ids"]), mask)  # (B, T, D)
        tokens = states * mask.unsqueeze(-1).to(states.dtype)
        return Encoded(tokens, mask, masked_mean(tokens, mask))

    def contextualize(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) token embeddings → (B, T, D) states; padding must not reach real tokens."""
        raise NotImplementedError


@encoders.register("gru-text")
class GRUTextEncoder(TokenTextEncoder):
    """Token embeddings and a (bidirectional) GRU, trained from scratch; pooled = masked mean.

    With ``bidirectional=True`` each direction has ``dim // 2`` units, so tokens stay ``dim`` wide.
    Sequences are packed, so the backward direction starts at each text's own last token.
    """

    def __init__(
        self,
        *,
        layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        dim = self.dim
        if bidirectional and dim % 2:
            raise ConfigError(f"a bidirectional GRU needs an even dim, got {dim}")
        self.gru = nn.GRU(
            dim,
            dim // 2 if bidirectional else dim,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.finish_setup()

    def contextualize(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1).cpu()
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        states, _ = self.gru(packed)
        out, _ = pad_packed_sequence(states, batch_first=True, total_length=embedded.shape[1])
        return out  # (B, T, D)


@encoders.register("transformer-text")
class TransformerTextEncoder(TokenTextEncoder):
    """Token embeddings, learned positions and a pre-norm Transformer encoder, from scratch.

    Padding is excluded from attention with a key padding mask; pooled = masked mean.
    """

    def __init__(
        self, *, layers: int = 2, heads: int = 4, dropout: float = 0.1, **common: Any
    ) -> None:
        super().__init__(**common)
        dim, max_length = self.dim, self.max_length
        if dim % heads:
            raise ConfigError(f"dim {dim} must be divisible by heads {heads}")
        self.positions = nn.Parameter(torch.randn(max_length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.finish_setup()

    def contextualize(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = embedded + self.positions[: embedded.shape[1]]  # (B, T, D)
        x = self.encoder(x, src_key_padding_mask=~mask)
        return self.norm(x)
