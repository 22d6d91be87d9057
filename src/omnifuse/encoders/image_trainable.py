"""A small convolutional image encoder trained from scratch, for end-to-end fusion experiments.

GroupNorm rather than BatchNorm keeps each image's features independent of the rest of its
batch, in training as in evaluation, so batched and one-by-one encoding agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.encoders.image import grid_tokens, image_pixels, normalize_pixels, stack_pixels
from omnifuse.errors import ConfigError
from omnifuse.types import Encoded

NORM_GROUPS = 8


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 convolution, GroupNorm, ReLU, then 2×2 max pooling (halves height and width)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.GroupNorm(math.gcd(NORM_GROUPS, out_channels), out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


@encoders.register("cnn-image")
class SmallCNNImageEncoder(Encoder):
    """Small CNN from scratch: one conv block per width in ``channels``, then one of ``dim``.

    Images are resized (bilinear, whole image) to ``image_size`` squared and scaled to [-1, 1].
    Each block halves the resolution, so tokens are the ``(image_size / 2**blocks)²`` cells of
    the final feature map (16 by default) and pooled is their mean.
    """

    modality = "image"
    trainable = True

    def __init__(
        self,
        *,
        dim: int = 128,
        image_size: int = 32,
        channels: Sequence[int] = (32, 64),
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        widths = [*channels, dim]
        if min(widths) < 1:
            raise ConfigError(f"channel widths must be positive, got {widths}")
        reduction = 2 ** len(widths)
        if image_size % reduction:
            raise ConfigError(
                f"image_size {image_size} must be a multiple of {reduction} "
                f"({len(widths)} blocks each halve it)"
            )
        self.image_size = image_size
        self.dim = dim
        self.body = nn.Sequential(
            *(
                conv_block(c_in, c_out)
                for c_in, c_out in zip([3, *widths[:-1]], widths, strict=True)
            )
        )
        self.finish_setup()

    def preprocess(self, raw: Any) -> torch.Tensor:
        return image_pixels(
            raw, self.image_size, center_crop=False, resample=Image.Resampling.BILINEAR
        )

    def collate(self, items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return stack_pixels(items)

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        x = normalize_pixels(batch["pixels"])  # (B, 3, S, S)
        return grid_tokens(self.body(x))  # (B, dim, S/2**blocks, S/2**blocks)
