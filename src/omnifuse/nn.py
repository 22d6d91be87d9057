"""Building blocks shared by encoders, fusions, heads, the aligner and the projector.

Everything here works on padded batches: ``tokens`` (B, T, D) with a ``mask`` (B, T) that is
True on real tokens. Padding never leaks into a result: masked means and sums skip it, masked
maxima and softmaxes exclude it, and a row with nothing real pools to zeros.

- masked pooling over the token axis: :func:`masked_sum`, :func:`masked_mean`,
  :func:`masked_max`, :func:`masked_softmax`;
- shortening a token sequence by averaging runs of tokens: :func:`stride_pool` (runs of a fixed
  length), :func:`downsample_tokens` (at most ``limit`` runs, the same for the whole batch),
  :func:`pool_in_runs` (``count`` runs per sample, set by the sample's own length);
- learned-query attention pooling: :func:`attention_pool` and :class:`AttentionPool`;
- :func:`mlp`: the two-layer perceptron that fusions, heads and projectors put on top;
- :class:`ConvBlock`: a masked 1-D convolution over time, for the CNN encoders of audio and series.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def masked_sum(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the real tokens of each sample: (B, T, D), (B, T) → (B, D)."""
    return (tokens * mask.to(tokens.dtype).unsqueeze(-1)).sum(dim=1)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens of each sample: (B, T, D), (B, T) → (B, D); all-padding → 0."""
    count = mask.to(tokens.dtype).sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, 1)
    return masked_sum(tokens, mask) / count


def masked_max(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Feature-wise maximum over the real tokens: (B, T, D), (B, T) → (B, D). Every row of
    ``mask`` needs a True (an all-padding row gives -inf)."""
    return tokens.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Softmax of ``scores`` along ``dim`` over the positions where ``mask`` is True.

    ``mask`` covers the leading dimensions of ``scores`` ((B, T) for scores (B, T, ...)) and is
    broadcast over the rest; a row with no True position gets all-zero weights, not NaN.
    """
    shape = mask.shape + (1,) * (scores.dim() - mask.dim())
    weights = scores.masked_fill(~mask.reshape(shape), float("-inf")).softmax(dim=dim)
    return weights.nan_to_num(0.0)


def stride_pool(
    tokens: torch.Tensor, mask: torch.Tensor, stride: int, *, length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average each run of ``stride`` consecutive tokens (real ones only): (B, T, D), (B, T) →
    (B, T', D) and its mask, where a run with no real token is zeros and masked out.

    ``T'`` is ``⌈T / stride⌉``, or ``length`` when given (the extra runs are padding). Whisper's
    20 ms frames become ``stride`` × 20 ms steps, which keeps the words and divides the cost of
    whatever reads the tokens next.
    """
    if stride == 1 and length is None:
        return tokens, mask
    batch, steps, dim = tokens.shape
    runs = -(-steps // stride) if length is None else length
    extra = stride * runs - steps
    real = mask.to(tokens.dtype)
    summed = F.pad(tokens * real.unsqueeze(-1), (0, 0, 0, extra))
    sums = summed.view(batch, runs, stride, dim).sum(2)  # (B, T', D)
    counts = F.pad(real, (0, extra)).view(batch, runs, stride).sum(2)  # (B, T')
    return sums / counts.clamp(min=1.0).unsqueeze(-1), counts > 0


def downsample_tokens(
    tokens: torch.Tensor, mask: torch.Tensor, limit: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A sequence longer than ``limit`` as exactly ``limit`` tokens: runs of ``⌈T / limit⌉``
    tokens averaged (masked positions ignored), trailing empty runs masked. Every sample of the
    batch gets the same runs, so the result depends on how long the batch is padded."""
    stride = -(-tokens.shape[1] // limit)
    return stride_pool(tokens, mask, stride, length=limit)


def pool_in_runs(
    tokens: torch.Tensor, mask: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average each sample's real tokens (a prefix of the row, as encoders pad) in ``count``
    contiguous, nearly equal runs: (B, T, D) → (B, count, D) and the (B, count) mask.

    The runs depend only on the sample's own length, never on the batch it is in; a sample with
    fewer than ``count`` tokens keeps them, the remaining positions masked."""
    batch, length, dim = tokens.shape
    lengths = mask.sum(dim=1, keepdim=True).clamp(min=1)  # (B, 1)
    position = torch.arange(length, device=tokens.device).unsqueeze(0)  # (1, T)
    run = torch.div(position * count, lengths, rounding_mode="floor").clamp(max=count - 1)
    weights = mask.to(tokens.dtype).unsqueeze(-1)  # (B, T, 1)
    index = run.unsqueeze(-1).expand(batch, length, dim)
    summed = tokens.new_zeros(batch, count, dim).scatter_add(1, index, tokens * weights)
    counts = tokens.new_zeros(batch, count, 1).scatter_add(1, run.unsqueeze(-1), weights)
    return summed / counts.clamp(min=1.0), counts.squeeze(-1) > 0


def attention_pool(tokens: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Attention-weighted sums of the real tokens: ``scores`` (B, T, Q) hold each of Q queries'
    score for every token; the softmax over the real tokens weights ``tokens`` (B, T, D) into
    (B, Q, D). A sample with no real token pools to zeros."""
    weights = masked_softmax(scores, mask, dim=1)  # (B, T, Q)
    return torch.einsum("btq,btd->bqd", weights, tokens)


class AttentionPool(nn.Module):
    """Attention pooling with learned queries: each of ``queries`` queries scores every token by a
    linear map (``score``) and takes the softmax-weighted sum of the real tokens, (B, Q, D).
    With one query this is "which frames matter for the clip"."""

    def __init__(self, dim: int, queries: int = 1) -> None:
        super().__init__()
        self.score = nn.Linear(dim, queries)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return attention_pool(tokens, mask, self.score(tokens))  # (B, Q, D)


def mlp(
    in_dim: int,
    hidden: int,
    out_dim: int,
    *,
    activation: type[nn.Module] = nn.ReLU,
    dropout: float | None = 0.0,
) -> nn.Sequential:
    """``Linear → activation → Dropout → Linear``, one hidden layer of ``hidden`` units.

    ``dropout=None`` leaves the Dropout layer out. The layers are the Sequential's direct
    children, so ``nn.Sequential(nn.LayerNorm(d), *mlp(...))`` puts a norm in front with the
    same flat parameter names (``0``, ``1``, ``4``) as writing the layers out.
    """
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden), activation()]
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, out_dim))
    return nn.Sequential(*layers)


class ConvBlock(nn.Module):
    """Conv1d over time, LayerNorm over channels, GELU, dropout; padding frames set to zero."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(channels_in, channels_out, kernel_size=3, stride=stride, padding=1)
        self.norm = nn.LayerNorm(channels_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, T), (B, T) → (B, C_out, T'), (B, T') with T' = ceil(T / stride)."""
        h = self.conv(x)  # (B, C_out, T')
        h = self.dropout(nn.functional.gelu(self.norm(h.transpose(1, 2)))).transpose(1, 2)
        lengths = torch.div(mask.sum(dim=1) + self.stride - 1, self.stride, rounding_mode="floor")
        mask = torch.arange(h.shape[-1], device=h.device)[None, :] < lengths[:, None]
        return h * mask.unsqueeze(1).to(h.dtype), mask
