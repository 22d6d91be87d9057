"""Pretraining the built-in decoder as a plain language model, through the one training loop:
the next-token cross-entropy over the texts, batched in a fresh order every epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.projector.decoder import DecoderConfig, DecoderLM, WordTokenizer
from omnifuse.train.config import TrainConfig
from omnifuse.train.loop import fit, seed_everything
from omnifuse.train.objective import ModuleObjective, decay_groups, shuffled_batches


@dataclass
class PretrainConfig(TrainConfig):
    """The training section (:class:`~omnifuse.train.TrainConfig`) with pretraining's defaults:
    AdamW with warmup-cosine, gradient clip 1, every epoch run."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    patience: int | None = None
    device: str = "cpu"


@dataclass
class PretrainResult:
    """The trained decoder and its tokenizer, with the loss per epoch."""

    model: DecoderLM
    tokenizer: WordTokenizer
    history: list[dict[str, Any]]
    seconds: float


def sequence_ids(tokenizer: WordTokenizer, text: str, max_len: int) -> list[int]:
    """``<bos> words… <eos>``, cut to ``max_len`` positions."""
    return ([tokenizer.bos_id, *tokenizer.encode(text), tokenizer.eos_id])[:max_len]


def lm_loss(model: DecoderLM, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the real positions of right-padded ``ids``."""
    logits = model(model.embed(ids), mask)[:, :-1]
    targets = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class DecoderObjective(ModuleObjective):
    """Language modelling on token rows for the training loop (no validation split)."""

    model: DecoderLM

    def __init__(
        self, model: DecoderLM, rows: list[torch.Tensor], pad_id: int, config: TrainConfig
    ) -> None:
        self.model, self.rows, self.pad_id, self.config = model, rows, pad_id, config
        self.device = next(model.parameters()).device

    def parameter_groups(self) -> list[dict[str, Any]]:
        return decay_groups(self.model.parameters(), self.config.weight_decay)

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        seed = self.config.seed * 1_000_003 + epoch
        return shuffled_batches(len(self.rows), self.config.batch_size, seed)

    def materialize(
        self, batches: Sequence[Sequence[int]]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for indices in batches:
            ids, mask = pad_rows([self.rows[i] for i in indices], self.pad_id)
            yield ids.to(self.device), mask.to(self.device)

    def loss_weight(self, indices: Sequence[int]) -> float:
        """The loss averages over predicted tokens: every token of a row after its first."""
        return float(sum(len(self.rows[i]) - 1 for i in indices))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return lm_loss(self.model, *batch)


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
    loop_config = PretrainConfig(**{**asdict(training), "progress": progress})
    objective = DecoderObjective(model, rows, tokenizer.pad_id, loop_config)
    result = fit(objective, loop_config, description="pretraining the decoder")
    model.eval()
    return PretrainResult(model, tokenizer, result.history, result.seconds)


def pad_rows(rows: Sequence[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token rows into ids (B, T) and a mask (B, T), True on real tokens."""
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = True
    return ids, mask
