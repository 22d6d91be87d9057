"""A small text-conditional UNet: residual blocks with a time embedding, self-attention and
cross-attention to the text encoder's tokens at the coarser resolutions.

The layout follows the latent-diffusion UNet (Rombach et al. 2022) cut to what a CPU trains: three
resolutions (``widths[i]`` channels at ``size / 2**i``), one residual block per level on the way
down and up with skip connections, and a spatial-transformer block (GroupNorm → self-attention →
cross-attention to the prompt tokens with their padding mask → feed-forward) at every level in
``attention_levels``. The text tokens are projected to each block's width inside the block.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from omnifuse.errors import ConfigError


@dataclass
class UNetConfig:
    """Sizes of the UNet: ``widths`` per resolution (top first), ``attention_levels`` (indices
    into ``widths``) where a spatial-transformer block runs, ``heads``, the text token width
    ``context_dim``, ``dropout``, and ``patch``: the UNet runs on ``patch``×``patch`` pixel
    patches (a strided convolution in, a pixel shuffle out), which divides the work of every
    level by ``patch²`` — what makes 32-pixel training fit a CPU budget. ``positions`` adds
    fixed 2-D sine features of each pixel's place to the attention's queries and keys: without
    them attention sees what a pixel holds but not where it is, which prompts such as "to the
    left of" are about (convolutions know position only through the image's zero-padded
    edges)."""

    image_size: int = 32
    channels: int = 3
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    attention_levels: list[int] = field(default_factory=lambda: [1, 2])
    heads: int = 4
    context_dim: int = 384
    dropout: float = 0.0
    patch: int = 1
    positions: bool = False

    def __post_init__(self) -> None:
        levels = len(self.widths)
        if self.patch < 1 or self.image_size % self.patch:
            raise ConfigError(f"patch {self.patch} must divide image_size {self.image_size}")
        if levels < 1 or any(w < 8 or w % 8 for w in self.widths):
            raise ConfigError(f"widths must be multiples of 8 (GroupNorm), got {self.widths}")
        if self.image_size % (self.patch * 2 ** (levels - 1)):
            raise ConfigError(
                f"image_size {self.image_size} must be divisible by patch × 2^(levels − 1) = "
                f"{self.patch * 2 ** (levels - 1)}"
            )
        if any(not 0 <= i < levels for i in self.attention_levels):
            raise ConfigError(f"attention_levels must index widths, got {self.attention_levels}")
        if any(self.widths[i] % self.heads for i in self.attention_levels):
            raise ConfigError(f"every attended width must be divisible by heads={self.heads}")


@functools.cache
def grid_positions(height: int, width: int, channels: int) -> torch.Tensor:
    """(height·width, channels) sine and cosine features of each pixel's row (first half of the
    channels) and column (second half), row-major, at ``channels / 4`` frequencies each from one
    radian a pixel down to a quarter turn across the larger side (so even the slowest wave still
    tells one edge from the other). Built once per size: every training and sampling step of
    every attended level asks for it, and callers only read it."""
    quarter = channels // 4
    slowest = math.pi / (2 * max(height, width))
    freqs = torch.exp(torch.linspace(0.0, math.log(slowest), quarter))

    def encode(count: int) -> torch.Tensor:
        angles = torch.arange(count, dtype=torch.float32)[:, None] * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (count, channels / 2)

    rows = encode(height)[:, None].expand(height, width, -1)
    cols = encode(width)[None].expand(height, width, -1)
    return torch.cat([rows, cols], dim=-1).reshape(height * width, -1)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of times in [0, 1] (scaled by 1000, as diffusion models do)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, plus the time embedding, twice; a 1×1 conv on the skip when the
    width changes."""

    def __init__(self, channels_in: int, channels_out: int, time_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.time = nn.Linear(time_dim, channels_out)
        self.norm2 = nn.GroupNorm(8, channels_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = (
            nn.Conv2d(channels_in, channels_out, 1)
            if channels_in != channels_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SpatialTransformer(nn.Module):
    """Self-attention over the pixels, cross-attention to the prompt's tokens, feed-forward."""

    def __init__(self, channels: int, context_dim: int, heads: int, positions: bool) -> None:
        super().__init__()
        self.positions = positions
        self.norm = nn.GroupNorm(8, channels)
        self.norm_self = nn.LayerNorm(channels)
        self.self_attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm_cross = nn.LayerNorm(channels)
        self.context = nn.Linear(context_dim, channels)
        self.cross_attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(channels)
        self.ff = nn.Sequential(
            nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels)
        )

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        place = grid_positions(h, w, c).to(x.device) if self.positions else 0.0
        with full_precision_attention(x.device):
            values = self.norm_self(tokens).float()
            q = values + place
            tokens = tokens + self.self_attn(q, q, values, need_weights=False)[0]
            keys = self.context(context.float())
            q = self.norm_cross(tokens).float() + place
            attended = self.cross_attn(
                q, keys, keys, key_padding_mask=~context_mask, need_weights=False
            )[0]
        tokens = tokens + attended
        tokens = tokens + self.ff(self.norm_ff(tokens))
        return x + tokens.transpose(1, 2).reshape(b, c, h, w)


def full_precision_attention(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """Attention outside bfloat16 autocast on the CPU: there PyTorch's bf16 flash-attention
    backward runs about ten times slower than its fp32 one, which made attention a third of a
    bf16 training step (``bench/generate_step.py``); elsewhere, autocast as the caller set it."""
    if device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return contextlib.nullcontext()
    return torch.autocast("cpu", enabled=False)


class Level(nn.Module):
    """One resolution of one path: a residual block and, optionally, a spatial transformer."""

    def __init__(
        self, channels_in: int, channels_out: int, config: UNetConfig, time_dim: int, attend: bool
    ) -> None:
        super().__init__()
        self.res = ResBlock(channels_in, channels_out, time_dim, config.dropout)
        self.attn = (
            SpatialTransformer(channels_out, config.context_dim, config.heads, config.positions)
            if attend
            else None
        )

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        x = self.res(x, temb)
        return x if self.attn is None else self.attn(x, context, mask)


class TextUNet(nn.Module):
    """Predicts the flow (velocity) of noisy images ``x`` at times ``t`` given prompt tokens."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths: Sequence[int] = config.widths
        time_dim = 4 * widths[0]
        self.time_mlp = nn.Sequential(
            nn.Linear(widths[0], time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        p = config.patch
        self.conv_in = (
            nn.Conv2d(config.channels, widths[0], 3, padding=1)
            if p == 1
            else nn.Conv2d(config.channels, widths[0], p, stride=p)
        )
        attend = set(config.attention_levels)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = widths[0]
        for i, width in enumerate(widths):
            self.down.append(Level(previous, width, config, time_dim, i in attend))
            previous = width
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.middle = Level(previous, previous, config, time_dim, True)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(widths))):
            self.up.append(Level(previous + widths[i], widths[i], config, time_dim, i in attend))
            previous = widths[i]
            if i > 0:
                self.upsample.append(nn.Conv2d(widths[i], widths[i - 1], 3, padding=1))
                previous = widths[i - 1]
        self.norm_out = nn.GroupNorm(8, widths[0])
        self.conv_out = nn.Conv2d(widths[0], config.channels * p * p, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # start as "no flow": a calm first step
        if self.conv_out.bias is not None:
            nn.init.zeros_(self.conv_out.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.config.widths[0]))
        h = self.conv_in(x)
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, temb, context, context_mask)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.middle(h, temb, context, context_mask)
        for i, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), temb, context, context_mask)
            if i < len(self.upsample):
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
                h = self.upsample[i](h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out if self.config.patch == 1 else F.pixel_shuffle(out, self.config.patch)
