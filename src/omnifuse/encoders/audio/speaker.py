"""Speaker embeddings from Resemblyzer's pretrained GE2E voice encoder, run in plain torch.

Only the weights come from the ``Resemblyzer`` package (its ``pretrained.pt``, read with
``torch.load(weights_only=True)`` and without importing the package); the network, the 40-bin
mel front end and the utterance preparation are re-implemented here, so neither librosa nor
webrtcvad is needed at run time.

An utterance is cut into partial utterances of 160 frames (1.6 s) every ~0.77 s; each partial
gets an L2-normalised embedding and the utterance embedding is their L2-normalised mean, as in
Resemblyzer's ``VoiceEncoder.embed_utterance``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.encoders.logmel import HOP_LENGTH, N_FFT, SAMPLE_RATE, mel_power
from omnifuse.errors import MissingDependencyError
from omnifuse.io import load_audio
from omnifuse.types import Encoded, pad_tokens

N_MELS = 40
PARTIAL_FRAMES = 160
HIDDEN = 256
EMBEDDING = 256
LAYERS = 3
TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1
VAD_WINDOW = 480  # 30 ms
VAD_SMOOTHING = 8
VAD_MAX_SILENCE = 6
VAD_RANGE_DB = 40.0


class GE2ENet(nn.Module):
    """Three LSTM layers over mel frames; the last hidden state → linear → ReLU → L2 norm."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBEDDING)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(P, 160, 40) mel power frames → (P, 256) unit-length embeddings."""
        _, (hidden, _) = self.lstm(mels)
        embeds = torch.relu(self.linear(hidden[-1]))
        return nn.functional.normalize(embeds, dim=1)


def resemblyzer_weights() -> Path:
    """Path of ``pretrained.pt`` inside the installed Resemblyzer package (not imported)."""
    spec = importlib.util.find_spec("resemblyzer")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "pretrained.pt"
        if path.is_file():
            return path
    raise MissingDependencyError("Resemblyzer's pretrained voice encoder (PyPI Resemblyzer)")


def load_ge2e_state() -> dict[str, torch.Tensor]:
    """The network weights of the checkpoint, without the GE2E loss's similarity scale/bias."""
    checkpoint = torch.load(resemblyzer_weights(), map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = checkpoint["model_state"]
    return {key: value for key, value in state.items() if not key.startswith("similarity_")}


def normalize_volume(wave: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise a quiet wave to ``target_dbfs`` RMS; louder waves and silence are left as they are."""
    rms = float(np.sqrt(np.mean((wave.astype(np.float64) * INT16_MAX) ** 2)))
    if rms == 0.0:
        return wave
    change_db = target_dbfs - 20.0 * math.log10(rms / INT16_MAX)
    if change_db < 0:
        return wave
    return (wave * 10 ** (change_db / 20.0)).astype(np.float32)


def trim_long_silences(wave: np.ndarray, range_db: float = VAD_RANGE_DB) -> np.ndarray:
    """Drop silences longer than ~0.2 s, judged by 30 ms window energy.

    A window counts as voiced when its energy is within ``range_db`` of the loudest window;
    the flags are smoothed and dilated as in Resemblyzer (which uses webrtcvad for the flags).
    """
    usable = len(wave) - len(wave) % VAD_WINDOW
    windows = wave[:usable].reshape(-1, VAD_WINDOW).astype(np.float64)
    if len(windows) == 0:
        return wave
    energy_db = 10.0 * np.log10(np.mean(windows**2, axis=1) + 1e-12)
    voiced = (energy_db > energy_db.max() - range_db).astype(np.float64)
    padded = np.concatenate(
        [np.zeros((VAD_SMOOTHING - 1) // 2), voiced, np.zeros(VAD_SMOOTHING // 2)]
    )
    smoothed = np.convolve(padded, np.ones(VAD_SMOOTHING) / VAD_SMOOTHING, mode="valid")
    keep = np.round(smoothed).astype(bool)
    reach = np.ones(VAD_MAX_SILENCE + 1)
    keep = np.convolve(keep.astype(np.float64), reach, mode="same") > 0
    if not keep.any():
        return wave
    return wave[:usable][np.repeat(keep, VAD_WINDOW)]


def partial_starts(n_samples: int, rate: float, min_coverage: float) -> list[int]:
    """First mel frame of each 160-frame partial utterance (Resemblyzer's slicing)."""
    n_frames = math.ceil((n_samples + 1) / HOP_LENGTH)
    step = int(np.round(SAMPLE_RATE / rate / HOP_LENGTH))
    if not 0 < step <= PARTIAL_FRAMES:
        raise ValueError(f"partial rate {rate} must give a step of 1..{PARTIAL_FRAMES} frames")
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    last_start = starts[-1] * HOP_LENGTH
    coverage = (n_samples - last_start) / (PARTIAL_FRAMES * HOP_LENGTH)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    return starts


def partial_mels(wave: np.ndarray, rate: float, min_coverage: float) -> torch.Tensor:
    """(P, 160, 40) mel power frames of the partial utterances of a prepared wave."""
    starts = partial_starts(len(wave), rate, min_coverage)
    needed = (starts[-1] + PARTIAL_FRAMES) * HOP_LENGTH
    samples = torch.from_numpy(np.asarray(wave, dtype=np.float32))
    samples = nn.functional.pad(samples, (0, max(0, needed - len(wave))))
    mel = mel_power(samples, n_mels=N_MELS, n_fft=N_FFT, hop_length=HOP_LENGTH).T  # (frames, 40)
    return torch.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])


@encoders.register("speaker")
class SpeakerEncoder(Encoder):
    """Speaker embeddings (256-d GE2E, Resemblyzer's pretrained weights); frozen.

    ``tokens`` are the embeddings of the 1.6 s partial utterances, ``pooled`` the utterance
    embedding (their L2-normalised mean). Options: ``rate`` (partials per second, 1.3),
    ``min_coverage`` (0.75), ``normalize_volume`` and ``trim_silence`` (both on: the wave is
    brought to -30 dBFS and long silences are cut before embedding).
    """

    modality = "audio"
    trainable = False

    def __init__(
        self,
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
        rate: float = 1.3,
        min_coverage: float = 0.75,
        normalize_volume: bool = True,
        trim_silence: bool = True,
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        partial_starts(SAMPLE_RATE, rate, min_coverage)  # fail early on a bad rate
        self.rate = rate
        self.min_coverage = min_coverage
        self.normalize_volume = normalize_volume
        self.trim_silence = trim_silence
        self.net = GE2ENet()
        self.net.load_state_dict(load_ge2e_state())
        self.dim = EMBEDDING
        self.finish_setup()

    def preprocess(self, raw: Any) -> torch.Tensor:
        """Decode to 16 kHz, prepare the wave, and cut its mel frames into partials."""
        wave = load_audio(raw, sample_rate=SAMPLE_RATE)
        if self.normalize_volume:
            wave = normalize_volume(wave)
        if self.trim_silence:
            wave = trim_long_silences(wave)
        return partial_mels(wave, self.rate, self.min_coverage)

    def collate(self, items: list[Any]) -> dict[str, torch.Tensor]:
        owner = [torch.full((len(item),), i, dtype=torch.long) for i, item in enumerate(items)]
        return {"mels": torch.cat(items), "owner": torch.cat(owner)}

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        partials = self.net(batch["mels"])  # (P, 256)
        owner = batch["owner"].to(partials.device)
        clips = int(owner.max()) + 1
        tokens, mask = pad_tokens([partials[owner == clip] for clip in range(clips)])
        pooled = nn.functional.normalize(tokens.sum(dim=1), dim=1)  # padding rows are zero
        return Encoded(tokens, mask, pooled)
