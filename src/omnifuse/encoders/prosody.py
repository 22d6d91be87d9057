"""Prosody features of speech — how it is said, not what — from Praat's measurements.

The measurements are those of :mod:`omnifuse.speech.prosody` (Praat's pitch tracker and
intensity through parselmouth, pauses from silent intervals, syllable nuclei after de Jong &
Wempe). The clip is cut into windows of ``window_s`` (100 ms); each window is one token
(:data:`FRAME_FEATURES`), and the clip's statistics are ``pooled`` (:data:`CLIP_FEATURES`).
Features are scaled to be of order one: pitch in semitones re 100 Hz / 12 (an octave is 1),
intensity in dB / 60. A window with no voiced frame has pitch 0 and voiced share 0; a silent
clip gives zeros for its pitch and rate statistics, never NaN. There are no weights: what
learns is the fusion model on top.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.errors import ConfigError
from omnifuse.io import DecodeLimits, load_audio
from omnifuse.speech.prosody import SAMPLE_RATE, TIME_STEP, Prosody, ProsodySettings, analyse
from omnifuse.types import Encoded, pad_tokens

FRAME_FEATURES = (
    "pitch: mean voiced f0 in semitones re 100 Hz / 12 (0 when unvoiced)",
    "voiced: share of the window's frames with a pitch",
    "pitch re the clip's median voiced f0, semitones / 12 (0 when unvoiced)",
    "intensity: mean dB / 60",
    "intensity peak: max dB / 60",
    "intensity re the clip's 99th percentile, dB / 30, within −2..0",
    "intensity change from the previous window, dB / 10, within −3..3",
    "sounding: share of frames above the silence threshold",
    "pause: share of frames inside a pause",
    "syllable nuclei in the window",
    "local rate: nuclei within ±0.5 s of the window's centre / 5",
    "position: the window's centre / the clip's duration",
)
CLIP_FEATURES = (
    "mean voiced pitch, semitones re 100 Hz / 12",
    "pitch standard deviation, semitones / 4",
    "pitch range (5th to 95th percentile), semitones / 12",
    "mean intensity of sounding frames, dB / 60",
    "intensity standard deviation of sounding frames, dB / 10",
    "intensity 99th percentile, dB / 60",
    "speaking rate: syllable nuclei per second of the speech span / 5",
    "articulation rate: nuclei per second of the span without pauses / 5",
    "pause ratio: share of the speech span in pauses",
    "pauses per second of the speech span",
    "voiced fraction of the speech span",
    "duration: log2(1 + seconds) / 4",
)
LOCAL_RATE_S = 0.5


def frame_features(prosody: Prosody, window_s: float) -> np.ndarray:
    """(windows, 12) token features, in the order of :data:`FRAME_FEATURES`."""
    per_window = max(1, round(window_s / TIME_STEP))
    count = max(1, math.ceil(len(prosody.times) / per_window))
    owner = np.minimum(np.arange(len(prosody.times)) // per_window, count - 1)
    frames = np.bincount(owner, minlength=count).astype(np.float64)
    voiced = prosody.voiced
    pitch = np.nan_to_num(prosody.pitch_st)
    median = float(np.median(prosody.pitch_st[voiced])) if voiced.any() else 0.0
    n_voiced = np.bincount(owner, weights=voiced, minlength=count)
    pitch_sum = np.bincount(owner, weights=np.where(voiced, pitch, 0.0), minlength=count)
    mean_pitch = np.divide(pitch_sum, n_voiced, out=np.zeros(count), where=n_voiced > 0)
    level = np.bincount(owner, weights=prosody.intensity_db, minlength=count) / frames
    peak = np.full(count, -np.inf)
    np.maximum.at(peak, owner, prosody.intensity_db)
    paused = np.zeros(len(prosody.times), dtype=bool)
    for start, end in prosody.pauses:
        paused |= (prosody.times > start) & (prosody.times < end)
    centres = (np.arange(count) + 0.5) * per_window * TIME_STEP
    nuclei = np.bincount(
        np.minimum((prosody.nuclei / (per_window * TIME_STEP)).astype(int), count - 1),
        minlength=count,
    )
    local = np.abs(prosody.nuclei[None, :] - centres[:, None]) <= LOCAL_RATE_S
    columns = [
        mean_pitch / 12,
        n_voiced / frames,
        np.where(n_voiced > 0, (mean_pitch - median) / 12, 0.0),
        level / 60,
        peak / 60,
        np.clip((level - prosody.peak_db) / 30, -2.0, 0.0),
        np.clip(np.diff(level, prepend=level[0]) / 10, -3.0, 3.0),
        np.bincount(owner, weights=prosody.sounding, minlength=count) / frames,
        np.bincount(owner, weights=paused, minlength=count) / frames,
        nuclei.astype(np.float64),
        local.sum(axis=1) / (2 * LOCAL_RATE_S) / 5,
        np.minimum(centres / max(prosody.duration_s, TIME_STEP), 1.0),
    ]
    return np.stack(columns, axis=1)


def clip_features(prosody: Prosody) -> np.ndarray:
    """(12,) clip statistics, in the order of :data:`CLIP_FEATURES`."""
    mean, sd, spread = prosody.pitch_stats()
    level, level_sd = prosody.intensity_stats()
    return np.array(
        [
            mean / 12,
            sd / 4,
            spread / 12,
            level / 60,
            level_sd / 10,
            prosody.peak_db / 60,
            prosody.speaking_rate / 5,
            prosody.articulation_rate / 5,
            prosody.pause_ratio,
            prosody.pauses_per_second,
            prosody.voiced_fraction,
            math.log2(1 + prosody.duration_s) / 4,
        ]
    )


@encoders.register("prosody")
class ProsodyEncoder(Encoder):
    """Praat prosody (12-d, no weights): one token per ``window_s`` window, clip statistics
    pooled.

    Options: ``window_s`` (0.1 s, a multiple of Praat's 10 ms step), ``max_seconds`` (longer
    clips raise ``InputTooLargeError``; 60), ``silence_db`` (25 dB below the clip's peak is
    silence), ``min_pause_s`` (0.2 s), ``pitch_floor`` and ``pitch_ceiling`` (75–500 Hz).
    """

    modality = "audio"
    trainable = False

    def __init__(
        self,
        *,
        window_s: float = 0.1,
        max_seconds: float = 60.0,
        silence_db: float = 25.0,
        min_pause_s: float = 0.2,
        pitch_floor: float = 75.0,
        pitch_ceiling: float = 500.0,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        if not TIME_STEP <= window_s <= 10.0:
            raise ConfigError(f"prosody window_s must be in {TIME_STEP}..10 s, got {window_s}")
        self.window_s = window_s
        self.limits = DecodeLimits(max_audio_seconds=max_seconds)
        self.settings = ProsodySettings(silence_db, min_pause_s, pitch_floor, pitch_ceiling)
        self.dim = len(FRAME_FEATURES)
        self.finish_setup()

    def preprocess(self, raw: Any) -> dict[str, torch.Tensor]:
        """Decode to 16 kHz mono, measure with Praat, and form the window and clip features."""
        wave = load_audio(raw, sample_rate=SAMPLE_RATE, limits=self.limits)
        prosody = analyse(wave, self.settings)
        return {
            "frames": torch.from_numpy(frame_features(prosody, self.window_s)).float(),
            "clip": torch.from_numpy(clip_features(prosody)).float(),
        }

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        tokens, mask = pad_tokens([item["frames"] for item in items])
        return {"inputs": tokens, "mask": mask, "pooled": torch.stack([i["clip"] for i in items])}

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        return Encoded(batch["inputs"], batch["mask"], batch["pooled"])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, window_s={self.window_s}"
