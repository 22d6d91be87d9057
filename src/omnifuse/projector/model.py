"""The projector route into a frozen LM (LLaVA-style): multimodal tokens → soft prompt → text.

Frozen encoders' token features of each input column (image grid cells, spoken-question frames,
video moments) are layer-normalised and average-pooled to a few tokens per column, optionally
mixed by a token-level fusion from :mod:`omnifuse.fusion` (``transformer``, ...), and mapped by a
:class:`Projector` (linear, or two layers with a GELU) to the LM's input-embedding width. These
vectors are placed after the begin token, before the text prompt, as a soft prompt::

    <bos> [soft prompt: P vectors] prompt tokens… target tokens… <eos>

The LM stays frozen; only the soft-prompt side learns, from the cross-entropy of the target
tokens alone (prompt and soft positions carry no loss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from omnifuse.errors import ConfigError
from omnifuse.fusion.base import create_fusion
from omnifuse.nn import mlp, pool_in_runs
from omnifuse.projector.lm import FrozenLM
from omnifuse.types import Encoded

PROJECTOR_KINDS = ("linear", "mlp2")
IGNORE = -100


class Projector(nn.Module):
    """Feature vectors → LM input embeddings: ``linear`` (one matrix) or ``mlp2`` (Linear, GELU,
    Linear; LLaVA-1.5's ``mlp2x_gelu``, hidden width ``hidden``, default the output width)."""

    def __init__(
        self, in_dim: int, out_dim: int, *, kind: str = "mlp2", hidden: int | None = None
    ) -> None:
        super().__init__()
        if kind not in PROJECTOR_KINDS:
            raise ConfigError(f"projector kind must be one of {PROJECTOR_KINDS}, got {kind!r}")
        if in_dim < 1 or out_dim < 1 or (hidden is not None and hidden < 1):
            raise ConfigError("projector sizes must be positive")
        self.kind = kind
        if kind == "linear":
            self.net: nn.Module = nn.Linear(in_dim, out_dim)
        else:
            self.net = mlp(in_dim, hidden or out_dim, out_dim, activation=nn.GELU, dropout=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SoftPrompt(nn.Module):
    """Per-column token features → ``(B, P, E)`` soft-prompt vectors and their ``(B, P)`` mask.

    ``tokens[column]`` is how many vectors each column contributes (its tokens are
    average-pooled down to that many by :func:`~omnifuse.nn.pool_in_runs`; shorter sequences
    are padded and masked). With ``fusion`` the normalised columns go through that token fusion
    first and its output tokens are projected instead.
    A column absent from a sample (``present`` False) contributes only masked positions.
    """

    def __init__(
        self,
        dims: Mapping[str, int],
        embed_dim: int,
        *,
        tokens: Mapping[str, int],
        kind: str = "mlp2",
        hidden: int | None = None,
        fusion: str | None = None,
        fusion_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.columns: tuple[str, ...] = tuple(sorted(dims))
        missing = [c for c in self.columns if c not in tokens]
        if missing or any(int(tokens[c]) < 1 for c in self.columns):
            raise ConfigError(
                f"projector.tokens needs a positive count for every column {self.columns}"
            )
        self.tokens = {c: int(tokens[c]) for c in self.columns}
        self.norms = nn.ModuleDict({c: nn.LayerNorm(dims[c]) for c in self.columns})
        self.fusion = None
        if fusion is not None:
            fused = create_fusion(fusion, dict(dims), **dict(fusion_cfg or {}))
            if not fused.uses_tokens:
                raise ConfigError(
                    f"projector.fusion {fusion!r} does not produce tokens; use a token fusion "
                    "such as 'transformer'"
                )
            self.fusion = fused
            self.projectors = nn.ModuleDict(
                {"fused": Projector(fused.dim, embed_dim, kind=kind, hidden=hidden)}
            )
        else:
            self.projectors = nn.ModuleDict(
                {c: Projector(dims[c], embed_dim, kind=kind, hidden=hidden) for c in self.columns}
            )

    def forward(
        self, features: Mapping[str, Encoded], present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``present`` is (B, M) in :attr:`columns` order."""
        pooled: dict[str, Encoded] = {}
        for i, column in enumerate(self.columns):
            enc = features[column]
            seq, mask = pool_in_runs(enc.tokens, enc.mask, self.tokens[column])
            seq = self.norms[column](seq)  # (B, k, D)
            mask = mask & present[:, i : i + 1].bool()
            pooled[column] = Encoded(seq, mask, enc.pooled)
        if self.fusion is not None:
            out = self.fusion(pooled, present)
            if out.tokens is None or out.token_mask is None:
                raise ConfigError("the projector's fusion returned no tokens")
            return self.projectors["fused"](out.tokens), out.token_mask
        vectors = [self.projectors[c](pooled[c].tokens) for c in self.columns]
        masks = [pooled[c].mask for c in self.columns]
        return torch.cat(vectors, dim=1), torch.cat(masks, dim=1)


class ProjectorLM(nn.Module):
    """A trainable :class:`SoftPrompt` in front of a frozen :class:`FrozenLM`.

    The LM is held as a plain attribute, not a submodule: it is not in this module's
    ``state_dict`` or ``parameters()``, and stays in eval mode whatever ``train()`` is called with.
    """

    def __init__(self, lm: FrozenLM, prompt: SoftPrompt) -> None:
        super().__init__()
        self.lm = lm
        self.prompt = prompt

    @property
    def columns(self) -> tuple[str, ...]:
        return self.prompt.columns

    def move(self, device: torch.device | str) -> ProjectorLM:
        """Put the soft-prompt side and the LM on ``device``."""
        self.to(device)
        self.lm.to(device)
        return self

    def _sequence(
        self,
        features: Mapping[str, Encoded],
        present: torch.Tensor,
        texts: Sequence[Sequence[int]],
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Input embeddings and mask of ``<bos> soft text`` (text right-padded); returns the
        index of the first text position too."""
        soft, soft_mask = self.prompt(features, present)  # (B, P, E), (B, P)
        batch, device = soft.shape[0], soft.device
        longest = max((len(t) for t in texts), default=0)
        ids = torch.full((batch, longest), self.lm.eos_id, dtype=torch.long, device=device)
        text_mask = torch.zeros(batch, longest, dtype=torch.bool, device=device)
        for i, row in enumerate(texts):
            ids[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
            text_mask[i, : len(row)] = True
        parts = [soft.to(self.lm.dtype), self.lm.embed(ids)]
        masks = [soft_mask, text_mask]
        if self.lm.bos_id is not None:
            bos = torch.full((batch, 1), self.lm.bos_id, dtype=torch.long, device=device)
            parts.insert(0, self.lm.embed(bos))
            masks.insert(0, torch.ones(batch, 1, dtype=torch.bool, device=device))
        start = sum(int(p.shape[1]) for p in parts[:-1])
        return torch.cat(parts, dim=1), torch.cat(masks, dim=1), start

    def loss(
        self,
        features: Mapping[str, Encoded],
        present: torch.Tensor,
        prompts: Sequence[Sequence[int]],
        targets: Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Mean cross-entropy of the target tokens and the end token after each target."""
        texts = [[*p, *t, self.lm.eos_id] for p, t in zip(prompts, targets, strict=True)]
        embeds, mask, start = self._sequence(features, present, texts)
        labels = torch.full(mask.shape, IGNORE, dtype=torch.long, device=mask.device)
        for i, (prompt, text) in enumerate(zip(prompts, texts, strict=True)):
            first = start + len(prompt)
            labels[i, first : start + len(text)] = torch.as_tensor(text[len(prompt) :])
        shifted = labels[:, 1:]  # position t predicts t + 1
        rows, cols = (shifted != IGNORE).nonzero(as_tuple=True)
        logits = self.lm.logits_at(embeds, mask, rows, cols)  # (N, V), target positions only
        return F.cross_entropy(logits.float(), shifted[rows, cols])

    @torch.no_grad()
    def generate(
        self,
        features: Mapping[str, Encoded],
        present: torch.Tensor,
        prompts: Sequence[Sequence[int]],
        *,
        max_tokens: int = 32,
    ) -> list[list[int]]:
        """Greedy decoding until the end token or ``max_tokens``; the generated ids per sample.

        Samples are decoded in groups of equal prompt length, so every sequence of a group keeps
        the positions it was trained with (no left padding)."""
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
        out: list[list[int]] = [[] for _ in prompts]
        groups: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(len(prompt), []).append(i)
        for members in groups.values():
            index = torch.as_tensor(members, device=present.device)
            chosen = {
                c: Encoded(*(t.index_select(0, index) for t in features[c])) for c in features
            }
            rows = self._greedy(
                chosen, present.index_select(0, index), [prompts[i] for i in members], max_tokens
            )
            for i, row in zip(members, rows, strict=True):
                out[i] = row
        return out

    def _greedy(
        self,
        features: Mapping[str, Encoded],
        present: torch.Tensor,
        prompts: Sequence[Sequence[int]],
        max_tokens: int,
    ) -> list[list[int]]:
        embeds, mask, _ = self._sequence(features, present, prompts)
        batch = embeds.shape[0]
        done = torch.zeros(batch, dtype=torch.bool, device=embeds.device)
        generated: list[torch.Tensor] = []
        rows = torch.arange(batch, device=embeds.device)
        for _ in range(max_tokens):
            last = torch.full_like(rows, embeds.shape[1] - 1)
            next_ids = self.lm.logits_at(embeds, mask, rows, last).argmax(dim=-1)  # (B,)
            next_ids = next_ids.masked_fill(done, self.lm.eos_id)
            generated.append(next_ids)
            done |= next_ids == self.lm.eos_id
            if bool(done.all()):
                break
            embeds = torch.cat([embeds, self.lm.embed(next_ids.unsqueeze(1))], dim=1)
            mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        ids = torch.stack(generated, dim=1).tolist()
        return [row[: row.index(self.lm.eos_id)] if self.lm.eos_id in row else row for row in ids]
