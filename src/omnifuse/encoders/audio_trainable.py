"""A small log-mel CNN for audio, trained from scratch with the rest of a fusion model.

Each clip becomes a compressed log-mel spectrogram (100 frames per second, our torch front end);
three 1-D convolution blocks over time, two of them strided, give one token per 40 ms. Padding
frames are zeroed after every block, so a clip gives the same tokens alone or in a padded batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.encoders.logmel import SAMPLE_RATE, log_mel
from omnifuse.errors import ConfigError
from omnifuse.io import DecodeLimits, load_audio
from omnifuse.nn import ConvBlock, masked_mean
from omnifuse.types import Encoded

STRIDES = (1, 2, 2)


@encoders.register("logmel-cnn")
class LogMelCNNEncoder(Encoder):
    """Log-mel + 1-D CNN trained from scratch: one token per 40 ms, ``dim`` channels.

    Options: ``dim`` (128), ``n_mels`` (64), ``max_seconds`` (longer clips raise
    ``InputTooLargeError``; 60), ``dropout`` (0.1).
    """

    modality = "audio"
    trainable = True

    def __init__(
        self,
        *,
        dim: int = 128,
        n_mels: int = 64,
        max_seconds: float = 60.0,
        dropout: float = 0.1,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        if dim < 1 or n_mels < 1:
            raise ConfigError(f"logmel-cnn needs dim and n_mels ≥ 1, got {dim} and {n_mels}")
        self.dim = dim
        self.n_mels = n_mels
        self.limits = DecodeLimits(max_audio_seconds=max_seconds)
        widths = (n_mels, *(dim for _ in STRIDES))
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], stride, dropout) for i, stride in enumerate(STRIDES)
        )
        self.finish_setup()

    def preprocess(self, raw: Any) -> torch.Tensor:
        """Decode to 16 kHz mono and compute its (frames, n_mels) compressed log-mel."""
        wave = load_audio(raw, sample_rate=SAMPLE_RATE, limits=self.limits)
        return log_mel(torch.from_numpy(wave), n_mels=self.n_mels).T

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        mask = batch["mask"]  # (B, T)
        x = batch["inputs"].transpose(1, 2) * mask.unsqueeze(1).to(batch["inputs"].dtype)
        for block in self.blocks:
            x, mask = block(x, mask)  # (B, dim, T')
        tokens = x.transpose(1, 2)  # (B, T', dim)
        return Encoded(tokens, mask, masked_mean(tokens, mask))
