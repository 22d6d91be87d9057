"""Whisper's 30-second windows, stored compactly and expanded only for the forward pass.

Whisper encoders take exactly 30 s of features (3000 frames, 1500 encoder states). A clip is cut
into consecutive 30 s windows; the encoder states of the windows are concatenated, each window
trimmed to the states that cover real audio (50 per second), so a 75 s clip gives
1500 + 1500 + 750 tokens.

A short clip's window is mostly silence padding whose frames all hold one value per mel bin, so
:func:`whisper_windows` keeps only the frames that can see audio plus that padding column, and
:func:`collate_windows` rebuilds the full (F, 3000) windows for a batch. This keeps preprocessed
items (and the feature cache) small without changing a single feature value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from omnifuse.encoders.logmel import HOP_LENGTH, N_FFT, WHISPER_FRAMES, WHISPER_SAMPLES
from omnifuse.nn import masked_mean
from omnifuse.types import Encoded, pad_tokens

SAMPLES_PER_STATE = 2 * HOP_LENGTH  # the encoder's strided conv halves the frame rate
WINDOW_STATES = WHISPER_FRAMES // 2

FeatureFn = Callable[[np.ndarray], torch.Tensor]
"""One wave of at most 30 s at 16 kHz → its full (n_mels, 3000) Whisper features."""


def real_states(n_samples: int) -> int:
    """Encoder states of a window that cover ``n_samples`` of audio (50 per second)."""
    return min(WINDOW_STATES, math.ceil(n_samples / SAMPLES_PER_STATE))


def audible_frames(n_samples: int) -> int:
    """Feature frames whose analysis window reaches into the first ``n_samples`` samples."""
    return min(WHISPER_FRAMES, math.ceil((n_samples + N_FFT // 2) / HOP_LENGTH))


def whisper_windows(wave: np.ndarray, features: FeatureFn) -> dict[str, torch.Tensor]:
    """Cut ``wave`` into 30 s windows and keep each window's audible frames.

    Returns ``features`` (F, total kept frames), ``kept`` (W,) frames kept per window, ``pad``
    (W, F) the value of every later frame of each window, and ``states`` (W,) real states.
    """
    kept_frames, pads, kept, states = [], [], [], []
    for start in range(0, len(wave), WHISPER_SAMPLES):
        chunk = wave[start : start + WHISPER_SAMPLES]
        full = features(chunk)  # (F, 3000)
        keep = audible_frames(len(chunk))
        kept_frames.append(full[:, :keep])
        pads.append(full[:, -1])
        kept.append(keep)
        states.append(real_states(len(chunk)))
    return {
        "features": torch.cat(kept_frames, dim=1),
        "kept": torch.tensor(kept, dtype=torch.long),
        "pad": torch.stack(pads),
        "states": torch.tensor(states, dtype=torch.long),
    }


def expand_windows(item: dict[str, torch.Tensor]) -> torch.Tensor:
    """The full (W, F, 3000) windows of one preprocessed clip."""
    windows = []
    offset = 0
    for keep, pad in zip(item["kept"].tolist(), item["pad"], strict=True):
        frames = item["features"][:, offset : offset + keep]
        filler = pad[:, None].expand(-1, WHISPER_FRAMES - keep)
        windows.append(torch.cat([frames, filler], dim=1))
        offset += keep
    return torch.stack(windows)


def collate_windows(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Every window of every clip in one batch: ``features`` (W, F, 3000), ``states`` (W,) real
    states per window, ``owner`` (W,) the clip each window belongs to."""
    windows = [expand_windows(item) for item in items]
    owner = [torch.full((len(w),), i, dtype=torch.long) for i, w in enumerate(windows)]
    return {
        "features": torch.cat(windows),
        "states": torch.cat([item["states"] for item in items]),
        "owner": torch.cat(owner),
    }


def join_windows(hidden: torch.Tensor, states: torch.Tensor, owner: torch.Tensor) -> Encoded:
    """Encoder output (W, 1500, D) of collated windows → one token sequence per clip."""
    clips = int(owner.max()) + 1 if owner.numel() else 0
    counts = states.tolist()
    per_clip: list[list[torch.Tensor]] = [[] for _ in range(clips)]
    for window, (clip, count) in enumerate(zip(owner.tolist(), counts, strict=True)):
        per_clip[clip].append(hidden[window, :count])
    tokens, mask = pad_tokens([torch.cat(parts) for parts in per_clip])
    return Encoded(tokens, mask, masked_mean(tokens, mask))
