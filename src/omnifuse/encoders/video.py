"""Video: sampled frames through an image encoder plus the soundtrack through an audio encoder.

Each output token is one sampled frame: the frame's pooled image feature concatenated with the
mean of the audio states nearest in time to that frame, so tokens are aligned audio-visual moments
(B, N_frames, D_image + D_audio). ``pooled`` pools the frame tokens over time, by a plain mean or by
attention with a learned query (which makes the encoder trainable). A clip without a soundtrack gets
zeros in the audio half of its tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.errors import ConfigError
from omnifuse.io import load_video
from omnifuse.nn import AttentionPool, masked_mean
from omnifuse.types import Encoded

AUDIO_RATE = 16_000
TEMPORAL_POOLS = ("mean", "attention")
SILENCE = np.zeros(AUDIO_RATE // 10, dtype=np.float32)  # stands in for a missing soundtrack


@encoders.register("video")
class VideoEncoder(Encoder):
    """Frames (``image`` encoder) + soundtrack (``audio`` encoder), pooled over time.

    Options: ``image`` and ``audio`` (registry names, defaults effnet-lite0 and whisper-tiny-en),
    ``image_cfg``/``audio_cfg`` (their configs), ``num_frames`` (sampled uniformly, default 8),
    ``temporal_pool`` ("mean" or "attention").
    """

    modality = "video"

    def __init__(
        self,
        *,
        image: str = "effnet-lite0",
        audio: str = "whisper-tiny-en",
        image_cfg: dict[str, Any] | None = None,
        audio_cfg: dict[str, Any] | None = None,
        num_frames: int = 8,
        temporal_pool: str = "mean",
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        if temporal_pool not in TEMPORAL_POOLS:
            raise ConfigError(
                f"temporal_pool must be one of {TEMPORAL_POOLS}, not {temporal_pool!r}"
            )
        if num_frames < 1:
            raise ConfigError("num_frames must be at least 1")
        self.image_encoder = encoders.create(image, device=device, dtype=dtype, **(image_cfg or {}))
        self.audio_encoder = encoders.create(audio, device=device, dtype=dtype, **(audio_cfg or {}))
        if self.image_encoder.modality != "image" or self.audio_encoder.modality != "audio":
            raise ConfigError("video needs an image encoder for frames and an audio encoder")
        self.num_frames = num_frames
        self.dim = self.image_encoder.dim + self.audio_encoder.dim
        self.pool = AttentionPool(self.dim) if temporal_pool == "attention" else None
        self.trainable = bool(
            self.pool is not None or self.image_encoder.trainable or self.audio_encoder.trainable
        )
        self.finish_setup()

    def preprocess(self, raw: Any) -> dict[str, Any]:
        clip = load_video(raw, num_frames=self.num_frames, sample_rate=AUDIO_RATE)
        frames = [self.image_encoder.preprocess(frame) for frame in clip.frames]
        has_audio = clip.audio is not None and clip.audio.size > 0
        wave = clip.audio if clip.audio is not None and has_audio else SILENCE
        return {
            "frames": frames,
            "frame_times": torch.as_tensor(clip.frame_times, dtype=torch.float32),
            "audio": self.audio_encoder.preprocess((wave, AUDIO_RATE)),
            "audio_seconds": float(len(wave)) / AUDIO_RATE,
            "has_audio": has_audio,
        }

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        counts = [len(item["frames"]) for item in items]
        longest = max(counts)
        times = torch.zeros(len(items), longest)
        for i, item in enumerate(items):
            times[i, : counts[i]] = item["frame_times"]
        return {
            "frames": self.image_encoder.collate([f for item in items for f in item["frames"]]),
            "frame_counts": torch.as_tensor(counts),
            "frame_times": times,
            "audio": self.audio_encoder.collate([item["audio"] for item in items]),
            "audio_seconds": torch.as_tensor([item["audio_seconds"] for item in items]),
            "has_audio": torch.as_tensor([item["has_audio"] for item in items]),
        }

    def forward(self, batch: dict[str, Any]) -> Encoded:
        counts = batch["frame_counts"].cpu()
        frames = self.image_encoder(batch["frames"]).pooled  # (sum N_i, D_img)
        visual, mask = _split_frames(frames, counts)  # (B, N, D_img), (B, N)
        sound = self.audio_encoder(batch["audio"])  # tokens (B, T_a, D_aud)
        aligned = _audio_per_frame(
            sound, batch["frame_times"], batch["audio_seconds"], mask
        )  # (B, N, D_aud)
        aligned = aligned * batch["has_audio"].to(aligned.dtype).view(-1, 1, 1)
        tokens = torch.cat([visual, aligned.to(visual.dtype)], dim=-1)
        if self.pool is not None:
            pooled = self.pool(tokens, mask).squeeze(1)  # one learned query: (B, D)
        else:
            pooled = masked_mean(tokens, mask)
        return Encoded(tokens, mask, pooled)


def _split_frames(frames: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum N_i, D) frame features → (B, N_max, D) plus the (B, N_max) mask."""
    longest = int(counts.max())
    out = frames.new_zeros((len(counts), longest, frames.shape[-1]))
    mask = torch.zeros((len(counts), longest), dtype=torch.bool, device=frames.device)
    start = 0
    for i, n in enumerate(counts.tolist()):
        out[i, :n] = frames[start : start + n]
        mask[i, :n] = True
        start += n
    return out, mask


def _audio_per_frame(
    sound: Encoded, frame_times: torch.Tensor, seconds: torch.Tensor, frame_mask: torch.Tensor
) -> torch.Tensor:
    """Mean of the audio states nearest in time to each frame: (B, N, D_aud).

    Audio token j of a clip with n real tokens covering s seconds sits at ((j + 0.5) / n) · s;
    each token is given to the frame whose time is closest.
    """
    device = sound.tokens.device
    real = sound.mask.sum(dim=1).clamp(min=1).to(torch.float32)  # (B,)
    index = torch.arange(sound.tokens.shape[1], device=device, dtype=torch.float32)
    token_times = (index + 0.5) / real.unsqueeze(1) * seconds.to(device).unsqueeze(1)  # (B, T_a)
    times = frame_times.to(device)
    distance = (token_times.unsqueeze(1) - times.unsqueeze(2)).abs()  # (B, N, T_a)
    distance = distance.masked_fill(~frame_mask.unsqueeze(2), float("inf"))
    nearest = distance.argmin(dim=1)  # (B, T_a): the frame each audio token belongs to
    frames = torch.arange(times.shape[1], device=device)
    assign = (nearest.unsqueeze(1) == frames.view(1, -1, 1)) & sound.mask.unsqueeze(1)
    weights = assign.to(sound.tokens.dtype)
    total = torch.einsum("bnt,btd->bnd", weights, sound.tokens)
    return total / weights.sum(dim=2, keepdim=True).clamp(min=1.0)
