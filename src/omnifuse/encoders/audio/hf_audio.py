"""Any Hugging Face audio model by name or local path: Whisper encoders and the wav2vec2 family.

Loading is offline (``local_files_only=True``): a local folder, or a hub name already in the
cache. The model family is read from the folder's ``config.json``:

- ``whisper``: the encoder of ``WhisperModel`` (the decoder is dropped) on 30 s log-mel windows,
  from the folder's ``WhisperFeatureExtractor`` when it has one, else from our torch front end;
- ``wav2vec2``, ``hubert``, ``wavlm``, ``data2vec-audio``: the model on the raw waveform,
  normalised to zero mean and unit variance per clip when the model expects it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.encoders.audio.windows import (
    FeatureFn,
    collate_windows,
    join_windows,
    whisper_windows,
)
from omnifuse.encoders.base import Encoder, encoders
from omnifuse.encoders.logmel import SAMPLE_RATE, WHISPER_FRAMES, whisper_log_mel
from omnifuse.errors import ConfigError, InvalidValueError, MissingDependencyError
from omnifuse.io import load_audio
from omnifuse.nn import masked_mean
from omnifuse.types import Encoded

WAVEFORM_FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


@encoders.register("hf-audio")
def hf_audio(model: str | Path, **cfg: Any) -> Encoder:
    """Any Hugging Face audio model (Whisper encoder, wav2vec2 family) by name or local path.

    Options: ``model`` (hub name in the local cache or a folder), ``trainable`` (fine-tune it;
    default False: frozen), ``device``, ``dtype``.
    """
    require_transformers()
    family = _model_type(model)
    if family == "whisper":
        return HFWhisperEncoder(model, **cfg)
    if family in WAVEFORM_FAMILIES:
        return HFWaveformEncoder(model, **cfg)
    known = ", ".join(("whisper", *WAVEFORM_FAMILIES))
    raise ConfigError(f"hf-audio does not know model type {family!r} of {model}; known: {known}")


def _local_pretrained(loader: Any, model: str | Path) -> Any:
    """``loader.from_pretrained`` without touching the network."""
    return loader.from_pretrained(str(model), local_files_only=True)


def _model_type(model: str | Path) -> str:
    from transformers import AutoConfig

    try:
        config = _local_pretrained(AutoConfig, model)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load a Hugging Face config from {model}: {err}") from None
    return str(config.model_type)


def _optional_feature_extractor(model: str | Path, loader: Any) -> Any:
    """The model's saved feature extractor, or None when the folder has none."""
    try:
        return _local_pretrained(loader, model)
    except (OSError, ValueError):
        return None


class HFAudioEncoder(Encoder):
    """What the Hugging Face audio encoders share: a model folder (or cached hub name) read
    offline, frozen unless ``trainable``."""

    modality = "audio"

    def __init__(
        self,
        model: str | Path,
        *,
        trainable: bool = False,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        self.trainable = trainable


class HFWhisperEncoder(HFAudioEncoder):
    """The encoder of a Hugging Face Whisper model: states at 50 per second, 30 s windows.

    Clips longer than 30 s are cut into 30 s windows whose states are concatenated.
    """

    def __init__(self, model: str | Path, **common: Any) -> None:
        super().__init__(model, **common)
        from transformers import WhisperFeatureExtractor, WhisperModel

        whisper = _local_pretrained(WhisperModel, model)
        self.encoder = whisper.get_encoder()
        config = whisper.config
        if config.max_source_positions * 2 != WHISPER_FRAMES:
            raise ConfigError(
                f"{model}: Whisper windows of {config.max_source_positions * 2} frames are not "
                f"supported; hf-audio expects {WHISPER_FRAMES} (30 s)"
            )
        self.n_mels = int(config.num_mel_bins)
        self.dim = int(config.d_model)
        extractor = _optional_feature_extractor(model, WhisperFeatureExtractor)
        self._features = _feature_fn(extractor, self.n_mels)
        self.finish_setup()
        self.encoder.embed_positions.requires_grad_(False)  # fixed sinusoids, never trained

    def preprocess(self, raw: Any) -> dict[str, torch.Tensor]:
        wave = load_audio(raw, sample_rate=SAMPLE_RATE)
        return whisper_windows(wave, self._features)

    def collate(self, items: list[Any]) -> dict[str, torch.Tensor]:
        return collate_windows(items)

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        hidden = self.encoder(input_features=batch["features"]).last_hidden_state  # (W, 1500, D)
        return join_windows(hidden, batch["states"].cpu(), batch["owner"].cpu())


def _feature_fn(extractor: Any, n_mels: int) -> FeatureFn:
    """Whisper features from the model's own extractor, else from our matching torch front end."""
    if extractor is None:
        return lambda chunk: whisper_log_mel(torch.from_numpy(chunk), n_mels=n_mels)
    if int(extractor.feature_size) != n_mels:
        raise ConfigError(
            f"feature extractor gives {extractor.feature_size} mel bins, model wants {n_mels}"
        )

    def extract(chunk: np.ndarray) -> torch.Tensor:
        out = extractor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="np")
        return torch.from_numpy(np.asarray(out["input_features"][0], dtype=np.float32))

    return extract


class HFWaveformEncoder(HFAudioEncoder):
    """A wav2vec2-family model on the raw waveform; one state per 20 ms for the usual configs.

    Models whose first conv layer uses group norm (``feat_extract_norm="group"``, e.g.
    wav2vec2-base) normalise over the whole clip, so zero padding would change their output:
    such models run clips of different lengths in separate forward passes. Layer-norm models
    take one padded batch with an attention mask.
    """

    def __init__(self, model: str | Path, **common: Any) -> None:
        super().__init__(model, **common)
        from transformers import AutoModel, Wav2Vec2FeatureExtractor

        self.model = _local_pretrained(AutoModel, model)
        config = self.model.config
        self.dim = int(config.hidden_size)
        self.padded_batches = getattr(config, "feat_extract_norm", "group") == "layer"
        extractor = _optional_feature_extractor(model, Wav2Vec2FeatureExtractor)
        self.sample_rate = int(getattr(extractor, "sampling_rate", SAMPLE_RATE))
        self.normalize = bool(getattr(extractor, "do_normalize", True))
        self.finish_setup()

    def preprocess(self, raw: Any) -> torch.Tensor:
        """Decode to mono at the model's rate; normalise per clip when the model expects it."""
        wave = torch.from_numpy(load_audio(raw, sample_rate=self.sample_rate))
        if int(self._token_lengths(torch.tensor([wave.numel()]))[0]) < 1:
            raise InvalidValueError(
                f"{wave.numel() / self.sample_rate * 1000:.1f} ms is too short for this model",
                modality=self.modality,
            )
        if self.normalize:
            wave = (wave - wave.mean()) / torch.sqrt(wave.var(unbiased=False) + 1e-7)
        return wave

    def collate(self, items: list[Any]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([len(item) for item in items], dtype=torch.long)
        waves = nn.utils.rnn.pad_sequence(list(items), batch_first=True)  # (B, N)
        return {"wave": waves, "lengths": lengths}

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        waves, lengths = batch["wave"], batch["lengths"]
        token_lengths = self._token_lengths(lengths.cpu())
        run = self._padded if self.padded_batches else self._by_length
        tokens = run(waves, lengths.cpu())  # (B, T, D)
        steps = torch.arange(tokens.shape[1])
        mask = (steps[None, :] < token_lengths[:, None]).to(tokens.device)
        tokens = tokens * mask.unsqueeze(-1).to(tokens.dtype)
        return Encoded(tokens, mask, masked_mean(tokens, mask))

    def _token_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        lengths_fn: Callable[[torch.Tensor], torch.Tensor] = (
            self.model._get_feat_extract_output_lengths
        )
        return lengths_fn(lengths).long()

    def _padded(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(waves.shape[1])
        attention = (steps[None, :] < lengths[:, None]).long().to(waves.device)
        return self.model(waves, attention_mask=attention).last_hidden_state

    def _by_length(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Run each group of equal-length clips unpadded and pad the outputs together."""
        outputs: dict[int, torch.Tensor] = {}
        for length in sorted(set(lengths.tolist())):
            rows = (lengths == length).nonzero().flatten()
            hidden = self.model(waves[rows.to(waves.device), :length]).last_hidden_state
            for row, states in zip(rows.tolist(), hidden, strict=True):
                outputs[row] = states
        longest = max(int(states.shape[0]) for states in outputs.values())
        return torch.stack(
            [
                nn.functional.pad(outputs[row], (0, 0, 0, longest - int(outputs[row].shape[0])))
                for row in range(len(lengths))
            ]
        )


def require_transformers() -> None:
    """Fail with a clear message when transformers is missing."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MissingDependencyError("Hugging Face transformers") from None
