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

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from omnifuse.data.schema import write_json_atomic
from omnifuse.errors import ConfigError
from omnifuse.progress import track
from omnifuse.train.schedule import warmup_cosine
from omnifuse.train.trainer import seed_everything

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)
WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
NO_SPACE_BEFORE = frozenset(".,:;?!)")
FORMAT = "omnifuse-decoder"
CONFIG_FILE = "decoder.json"
WEIGHTS_FILE = "decoder.safetensors"


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


@dataclass
class PretrainConfig:
    """How the decoder is pretrained as a plain LM: AdamW with warmup-cosine, grad clip 1."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    seed: int = 0


@dataclass
class PretrainResult:
    """The trained decoder and its tokenizer, with the loss per epoch."""

    model: DecoderLM
    tokenizer: WordTokenizer
    history: list[dict[str, float]]
    seconds: float


def sequence_ids(tokenizer: WordTokenizer, text: str, max_len: int) -> list[int]:
    """``<bos> words… <eos>``, cut to ``max_len`` positions."""
    return ([tokenizer.bos_id, *tokenizer.encode(text), tokenizer.eos_id])[:max_len]


def lm_loss(model: DecoderLM, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the real positions of right-padded ``ids``."""
    logits = model(model.embed(ids), mask)[:, :-1]
    targets = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def pretrain_decoder(
    texts: Sequence[str],
    config: DecoderConfig | dict[str, Any] | None = None,
    training: PretrainConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> PretrainResult:
    """Build a vocabulary from ``texts`` and train a decoder on them as a language model.

    ``config`` sizes the model (``vocab_size`` is set from the vocabulary)."""
    if not texts:
        raise ConfigError("pretraining the decoder needs at least one text")
    training = training or PretrainConfig()
    tokenizer = WordTokenizer.build(texts)
    settings = asdict(config) if isinstance(config, DecoderConfig) else dict(config or {})
    settings["vocab_size"] = tokenizer.vocab_size
    seed_everything(training.seed)
    model = DecoderLM(DecoderConfig.from_dict(settings)).to(device)
    rows = [torch.tensor(sequence_ids(tokenizer, t, model.config.max_len)) for t in texts]
    optimizer = _adamw(model, training)
    steps_per_epoch = math.ceil(len(rows) / training.batch_size)
    total = steps_per_epoch * training.epochs
    warmup = round(training.warmup_ratio * total)
    generator = torch.Generator().manual_seed(training.seed)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    step = 0
    model.train()
    epochs: Iterable[int] = range(training.epochs)
    if progress:
        epochs = track(epochs, "pretraining the decoder", total=training.epochs)
    for epoch in epochs:
        order = torch.randperm(len(rows), generator=generator).tolist()
        running = 0.0
        for start in range(0, len(rows), training.batch_size):
            batch = [rows[i] for i in order[start : start + training.batch_size]]
            ids, mask = _pad(batch, tokenizer.pad_id)
            for group in optimizer.param_groups:
                group["lr"] = training.lr * warmup_cosine(step, total, warmup)
            loss = lm_loss(model, ids.to(device), mask.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            running += float(loss.detach())
            step += 1
        history.append({"epoch": epoch + 1, "train_loss": running / steps_per_epoch})
    model.eval()
    return PretrainResult(model, tokenizer, history, time.perf_counter() - started)


def _adamw(model: nn.Module, training: PretrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": training.weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=training.lr)


def _pad(rows: Sequence[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = True
    return ids, mask


def save_decoder(
    folder: str | Path,
    model: DecoderLM,
    tokenizer: WordTokenizer,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``decoder.json`` (config, vocabulary, metrics) and ``decoder.safetensors``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp), metadata={"format": FORMAT})
    tmp.replace(folder / WEIGHTS_FILE)
    write_json_atomic(
        folder / CONFIG_FILE,
        {
            "format": FORMAT,
            "version": 1,
            "config": asdict(model.config),
            "vocab": tokenizer.vocab,
            "metrics": metrics or {},
        },
    )
    return folder


def load_decoder(folder: str | Path) -> tuple[DecoderLM, WordTokenizer]:
    """A decoder folder → the model (eval mode, CPU) and its tokenizer."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{folder} is not a decoder folder (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an omnifuse decoder (format tag missing)")
    tokenizer = WordTokenizer(list(data["vocab"]))
    model = DecoderLM(DecoderConfig.from_dict(dict(data["config"])))
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except (OSError, SafetensorError) as err:
        raise ConfigError(f"{folder / WEIGHTS_FILE}: cannot read the weights ({err})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(f"{folder}: weights do not fit the decoder config ({err})") from None
    return model.eval(), tokenizer
