"""The built-in language model of the projector route: a small decoder-only Transformer with a
word-level vocabulary, trained here as a plain LM and then frozen.

It is the CPU-friendly default of :mod:`omnifuse.projector`: with a vocabulary built from the
training texts (76 words on the ``world`` data) and three layers of 128, pretraining on the
800-scene world's text takes a few minutes on one CPU thread, and the frozen model reads
soft-prompt embeddings through :meth:`DecoderLM.forward` as a Hugging Face causal LM reads
``inputs_embeds``.

A decoder is a folder: ``decoder.json`` (format tag, :class:`DecoderConfig`, vocabulary) and
``decoder.safetensors``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.fileio import FolderFormat, cpu_state

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)
WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
NO_SPACE_BEFORE = frozenset(".,:;?!)")
DECODER_FOLDER = FolderFormat(
    "omnifuse-decoder",
    "decoder",
    version=None,
    config_file="decoder.json",
    weights_file="decoder.safetensors",
)


def words(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: ``"Is it red?"`` → is, it, red, ?."""
    return WORD.findall(text.lower())


class WordTokenizer:
    """A closed word-level vocabulary; ids 0-3 are padding, unknown, begin and end."""

    def __init__(self, vocab: Sequence[str]) -> None:
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ConfigError(f"a word vocabulary must start with {SPECIALS}")
        if len(set(vocab)) != len(vocab):
            raise ConfigError("a word vocabulary must not repeat words")
        self.vocab = list(vocab)
        self.index = {word: i for i, word in enumerate(self.vocab)}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = range(len(SPECIALS))

    @classmethod
    def build(cls, texts: Iterable[str], *, min_count: int = 1) -> WordTokenizer:
        """The vocabulary of ``texts``: words seen ``min_count`` times or more, most frequent
        first (ties alphabetical), after the special tokens."""
        counts = Counter(w for text in texts for w in words(text))
        kept = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls([*SPECIALS, *kept])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, self.unk_id) for w in words(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Words joined by spaces, punctuation attached to the word before; specials dropped."""
        out = ""
        for i in ids:
            if not 0 <= i < len(self.vocab) or i < len(SPECIALS):
                continue
            word = self.vocab[i]
            out += word if not out or word in NO_SPACE_BEFORE else " " + word
        return out


@dataclass
class DecoderConfig:
    """Size of the decoder: ``dim`` wide, ``layers`` pre-norm blocks of ``heads`` heads, learned
    positions up to ``max_len``, feed-forward ``ff_mult × dim``; input and output embeddings
    are tied."""

    vocab_size: int
    dim: int = 128
    layers: int = 3
    heads: int = 4
    max_len: int = 128
    ff_mult: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "layers", "heads", "max_len", "ff_mult"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"decoder {name} must be a positive integer, got {value!r}")
        if self.dim % self.heads:
            raise ConfigError(f"decoder dim {self.dim} is not divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"decoder dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown decoder setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


class _Block(nn.Module):
    """Pre-norm causal self-attention and feed-forward, both residual."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.norm1 = nn.LayerNorm(config.dim)
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.out = nn.Linear(config.dim, config.dim)
        self.norm2 = nn.LayerNorm(config.dim)
        self.ff = nn.Sequential(
            nn.Linear(config.dim, config.ff_mult * config.dim),
            nn.GELU(),
            nn.Linear(config.ff_mult * config.dim, config.dim),
        )
        self.drop = nn.Dropout(config.dropout)
        self.attn_dropout = config.dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(dim, dim=-1)
        shape = (batch, length, self.heads, dim // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        p = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        y = y.transpose(1, 2).reshape(batch, length, dim)
        x = x + self.drop(self.out(y))
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderLM(nn.Module):
    """A GPT-style decoder. :meth:`embed` gives token embeddings; :meth:`forward` takes input
    embeddings (token embeddings, soft-prompt vectors, or both) and returns next-token logits."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.dim)
        self.positions = nn.Embedding(config.max_len, config.dim)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.apply(_init_weights)

    @property
    def dim(self) -> int:
        return self.config.dim

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids → (B, T, dim) input embeddings."""
        return self.tokens(ids)

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, T, dim) embeddings and a (B, T) mask (True/1 = real) → (B, T, vocab) logits.

        A position attends to earlier real positions and to itself, so a padded position in the
        middle (e.g. a missing soft-prompt token) is skipped by everything after it."""
        batch, length, _ = inputs_embeds.shape
        if length > self.config.max_len:
            raise ConfigError(
                f"sequence of {length} positions exceeds the decoder's max_len "
                f"{self.config.max_len}"
            )
        device = inputs_embeds.device
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.bool, device=device)
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=device)
        allowed = (causal & attention_mask.bool()[:, None, :]) | eye  # (B, T, T)
        positions = torch.arange(length, device=device)
        x = self.drop(inputs_embeds + self.positions(positions))
        for block in self.blocks:
            x = block(x, allowed.unsqueeze(1))
        return F.linear(self.norm(x), self.tokens.weight)  # tied output embedding


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def save_decoder(
    folder: str | Path,
    model: DecoderLM,
    tokenizer: WordTokenizer,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``decoder.json`` (config, vocabulary, metrics) and ``decoder.safetensors``."""
    body = {"config": asdict(model.config), "vocab": tokenizer.vocab, "metrics": metrics or {}}
    return DECODER_FOLDER.write(folder, cpu_state(model), body)


def load_decoder(folder: str | Path) -> tuple[DecoderLM, WordTokenizer]:
    """A decoder folder → the model (eval mode, CPU) and its tokenizer."""
    data = DECODER_FOLDER.read_config(folder)
    tokenizer = WordTokenizer(list(data["vocab"]))
    model = DecoderLM(DecoderConfig.from_dict(dict(data["config"])))
    DECODER_FOLDER.load_weights(model, folder)
    return model.eval(), tokenizer
