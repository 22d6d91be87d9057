"""Audio encoders: the torch log-mel front end, whisper-tiny-en, hf-audio, speaker, logmel-cnn."""

from __future__ import annotations

import io
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from omnifuse.encoders import Encoder, create, describe, list_encoders
from omnifuse.encoders.audio.windows import expand_windows, whisper_windows
from omnifuse.encoders.logmel import (
    WHISPER_FRAMES,
    log_mel,
    mel_filterbank,
    pad_or_trim,
    whisper_log_mel,
)
from omnifuse.errors import CorruptInputError, EmptyInputError, InputError, InputTooLargeError
from omnifuse.nn import masked_mean
from omnifuse.speech.tts import Voice, synthesize
from omnifuse.types import Encoded

RATE = 16_000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
AUDIO_ENCODERS = ("whisper-tiny-en", "hf-audio", "speaker", "logmel-cnn")


def noise_clip(seconds: float, seed: int) -> tuple[np.ndarray, int]:
    """Exactly ``seconds`` of a noisy 220 Hz tone, as an (array, rate) raw input."""
    n = round(seconds * RATE)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)
    return wave.astype(np.float32), RATE


def wav_bytes(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def check_contract(
    encoder: Encoder,
    raws: Sequence[Any],
    counts: Sequence[int],
    *,
    atol: float,
    masked_mean_pool: bool = True,
) -> Encoded:
    """Shapes, mask, finiteness, pooling, and batched == one by one (within ``atol``)."""
    out = encoder.encode(list(raws))
    assert out.tokens.shape == (len(raws), max(counts), encoder.dim)
    assert out.pooled.shape == (len(raws), encoder.dim)
    assert out.mask.dtype == torch.bool
    assert out.mask.sum(dim=1).tolist() == list(counts)
    for row, count in enumerate(counts):
        assert out.mask[row, :count].all() and not out.mask[row, count:].any()
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()
    assert (out.tokens[~out.mask] == 0).all()
    if masked_mean_pool:
        torch.testing.assert_close(out.pooled, masked_mean(out.tokens, out.mask))
    for row, (raw, count) in enumerate(zip(raws, counts, strict=True)):
        alone = encoder.encode([raw])
        assert alone.tokens.shape == (1, count, encoder.dim)
        torch.testing.assert_close(alone.tokens[0], out.tokens[row, :count], atol=atol, rtol=0)
        torch.testing.assert_close(alone.pooled[0], out.pooled[row], atol=atol, rtol=0)
    return out


def check_gradients(encoder: Encoder, raws: Sequence[Any]) -> None:
    """Every trainable parameter gets a non-zero gradient from a random projection of the output."""
    encoder.train()
    out = encoder.encode(list(raws))
    gen = torch.Generator().manual_seed(0)
    token_weights = torch.randn(out.tokens.shape, generator=gen)
    pooled_weights = torch.randn(out.pooled.shape, generator=gen)
    loss = (out.tokens * token_weights).sum() + (out.pooled * pooled_weights).sum()
    loss.backward()
    missing = [
        name
        for name, param in encoder.named_parameters()
        if param.requires_grad and (param.grad is None or not param.grad.abs().sum() > 0)
    ]
    assert missing == []


def cosine_matrix(vectors: torch.Tensor, *, centre: bool) -> np.ndarray:
    if centre:
        vectors = vectors - vectors.mean(dim=0)
    unit = torch.nn.functional.normalize(vectors.double(), dim=1)
    return (unit @ unit.T).numpy()


# --- log-mel front end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spoken() -> np.ndarray:
    return synthesize("seven eight nine", Voice("espeak-ng", "en-us"))


def test_mel_filterbank_matches_transformers_slaney() -> None:
    from transformers.audio_utils import mel_filter_bank

    for n_mels in (40, 64, 80, 128):
        ref = mel_filter_bank(
            num_frequency_bins=201,
            num_mel_filters=n_mels,
            min_frequency=0.0,
            max_frequency=8000.0,
            sampling_rate=RATE,
            norm="slaney",
            mel_scale="slaney",
        )
        ours = mel_filterbank(n_mels).numpy()
        assert ours.shape == (n_mels, 201)
        np.testing.assert_allclose(ours, ref.T, atol=1e-7)


def test_whisper_log_mel_matches_whisper_feature_extractor(spoken: np.ndarray) -> None:
    from transformers import WhisperFeatureExtractor

    ref = WhisperFeatureExtractor()(spoken, sampling_rate=RATE, return_tensors="np")
    ours = whisper_log_mel(torch.from_numpy(spoken)).numpy()
    assert ours.shape == (80, WHISPER_FRAMES)
    assert np.abs(ours - ref["input_features"][0]).max() < 1e-3


def test_log_mel_has_one_frame_per_hop_and_whisper_range() -> None:
    wave, _ = noise_clip(0.5, seed=1)
    features = log_mel(torch.from_numpy(wave), n_mels=64)
    assert features.shape == (64, 1 + 8000 // 160)
    assert torch.isfinite(features).all()
    assert float(features.max() - features.min()) <= 2.0 + 1e-6  # 80 dB range → 2 units
    assert tuple(pad_or_trim(torch.ones(10), 4).shape) == (4,)


@pytest.mark.parametrize("seconds", [0.5, 31.0])
def test_compact_windows_expand_to_exact_whisper_features(seconds: float) -> None:
    wave, _ = noise_clip(seconds, seed=2)
    item = whisper_windows(wave, lambda chunk: whisper_log_mel(torch.from_numpy(chunk)))
    windows = expand_windows(item)
    expected = [
        whisper_log_mel(torch.from_numpy(wave[start : start + 480_000]))
        for start in range(0, len(wave), 480_000)
    ]
    torch.testing.assert_close(windows, torch.stack(expected), atol=0, rtol=0)
    assert item["features"].shape[1] < len(expected) * WHISPER_FRAMES  # stored compactly


# --- whisper-tiny-en (CTranslate2) -------------------------------------------------------------


@pytest.fixture(scope="module")
def whisper() -> Encoder:
    return create("whisper-tiny-en", threads=2)


def test_whisper_tiny_en_contract(whisper: Encoder) -> None:
    assert whisper.dim == 384 and not whisper.trainable and whisper.modality == "audio"
    check_contract(whisper, [noise_clip(0.5, 3), noise_clip(1.7, 4)], [25, 85], atol=1e-4)


def test_whisper_tiny_en_concatenates_30s_windows(whisper: Encoder) -> None:
    out = whisper.encode([noise_clip(31.0, 5)])
    assert out.tokens.shape == (1, 1500 + 50, 384)
    assert out.mask.all() and torch.isfinite(out.tokens).all()


@pytest.fixture(scope="module")
def whisper_unpadded() -> Encoder:
    return create("whisper-tiny-en", threads=2, pad_to_30s=False)


def test_whisper_tiny_en_unpadded_keeps_the_contract(whisper_unpadded: Encoder) -> None:
    check_contract(whisper_unpadded, [noise_clip(0.5, 3), noise_clip(1.7, 4)], [25, 85], atol=1e-4)
    out = whisper_unpadded.encode([noise_clip(31.0, 5)])
    assert out.tokens.shape == (1, 1500 + 50, 384)


@pytest.mark.parametrize("padded", [True, False])
def test_whisper_tiny_en_features_tell_spoken_digits_apart(
    padded: bool, whisper: Encoder, whisper_unpadded: Encoder
) -> None:
    """Across two TTS voices, each spoken digit is nearest to the same digit by the other voice."""
    whisper = whisper if padded else whisper_unpadded
    voices = [Voice("espeak-ng", "en-us"), Voice("flite", "slt")]
    clips = [(synthesize(word, voice), RATE) for voice in voices for word in DIGITS]
    pooled = whisper.encode(clips, batch_size=10).pooled
    sims = cosine_matrix(pooled, centre=True)
    cross = sims[:10, 10:]  # rows: voice 0, columns: voice 1, both in digit order
    same = np.diag(cross).mean()
    different = cross[~np.eye(10, dtype=bool)].mean()
    assert same > different + 0.15
    nearest = np.concatenate([cross.argmax(axis=1), cross.argmax(axis=0)])
    accuracy = (nearest == np.tile(np.arange(10), 2)).mean()
    assert accuracy >= 0.7  # chance is 0.1


# --- hf-audio ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_whisper_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random tiny Whisper saved without and with a feature extractor."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        num_mel_bins=80,
        max_source_positions=1500,
    )
    bare = tmp_path_factory.mktemp("tiny-whisper")
    WhisperModel(config).save_pretrained(bare)
    with_extractor = tmp_path_factory.mktemp("tiny-whisper-fe")
    shutil.copytree(bare, with_extractor, dirs_exist_ok=True)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(with_extractor)
    return bare, with_extractor


def tiny_wav2vec2_dir(root: Path, norm: str) -> Path:
    from transformers import Wav2Vec2Model

    from tiny_hf import tiny_wav2vec2_config

    torch.manual_seed(0)
    path = root / f"tiny-wav2vec2-{norm}"
    Wav2Vec2Model(tiny_wav2vec2_config(norm)).save_pretrained(path)
    return path


def conv_output_length(samples: int) -> int:
    for kernel, stride in ((10, 5), (8, 8)):
        samples = (samples - kernel) // stride + 1
    return samples


def test_hf_audio_whisper_contract_and_gradients(tiny_whisper_dirs: tuple[Path, Path]) -> None:
    bare, _ = tiny_whisper_dirs
    encoder = create("hf-audio", model=str(bare))
    assert encoder.dim == 32 and not encoder.trainable
    raws = [noise_clip(0.5, 6), noise_clip(1.7, 7)]
    check_contract(encoder, raws, [25, 85], atol=1e-5)

    trainable = create("hf-audio", model=str(bare), trainable=True)
    check_gradients(trainable, raws)
    frozen = [name for name, p in trainable.named_parameters() if not p.requires_grad]
    assert frozen == ["encoder.embed_positions.weight"]  # Whisper's fixed sinusoids


def test_hf_audio_whisper_uses_saved_feature_extractor_same_features(
    tiny_whisper_dirs: tuple[Path, Path],
) -> None:
    bare, with_extractor = tiny_whisper_dirs
    raws = [noise_clip(0.8, 8)]
    ours = create("hf-audio", model=str(bare)).encode(raws)
    theirs = create("hf-audio", model=str(with_extractor)).encode(raws)
    torch.testing.assert_close(ours.tokens, theirs.tokens, atol=1e-4, rtol=0)


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_hf_audio_wav2vec2_contract_and_gradients(tmp_path: Path, norm: str) -> None:
    path = tiny_wav2vec2_dir(tmp_path, norm)
    encoder = create("hf-audio", model=str(path))
    assert encoder.dim == 32
    raws = [noise_clip(0.5, 9), noise_clip(1.7, 10), noise_clip(0.5, 11)]
    counts = [conv_output_length(8000), conv_output_length(27200), conv_output_length(8000)]
    assert counts == [199, 679, 199]
    check_contract(encoder, raws, counts, atol=1e-4)
    check_gradients(create("hf-audio", model=str(path), trainable=True), raws)


def test_hf_audio_wav2vec2_normalises_loudness(tmp_path: Path) -> None:
    encoder = create("hf-audio", model=str(tiny_wav2vec2_dir(tmp_path, "layer")))
    wave, _ = noise_clip(0.5, 12)
    quiet, loud = encoder.encode([(0.1 * wave, RATE), (wave, RATE)]).pooled
    torch.testing.assert_close(quiet, loud, atol=1e-4, rtol=0)


def test_hf_audio_refuses_unknown_paths_and_families(tmp_path: Path) -> None:
    from transformers import BertConfig

    with pytest.raises(ValueError, match="cannot load"):
        create("hf-audio", model=str(tmp_path / "missing"))
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model type 'bert'"):
        create("hf-audio", model=str(tmp_path))


# --- speaker -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speaker() -> Encoder:
    return create("speaker")


def test_speaker_contract(speaker: Encoder) -> None:
    assert speaker.dim == 256 and not speaker.trainable
    # 0.5 s → one 1.6 s partial; 3 s → partials at 0, 0.77 and 1.54 s.
    out = check_contract(
        speaker,
        [noise_clip(0.5, 13), noise_clip(3.0, 14)],
        [1, 3],
        atol=1e-5,
        masked_mean_pool=False,
    )
    torch.testing.assert_close(out.pooled.norm(dim=1), torch.ones(2))
    mean = torch.nn.functional.normalize(out.tokens[1].mean(dim=0), dim=0)
    torch.testing.assert_close(out.pooled[1], mean)


def test_speaker_matches_resemblyzer_reference(speaker: Encoder) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resemblyzer = pytest.importorskip("resemblyzer")
    wave = synthesize("the red square is left of the blue circle", Voice("flite", "slt"))
    prepared = resemblyzer.preprocess_wav(wave)
    reference = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
    embed, partials, _ = reference.embed_utterance(prepared, return_partials=True)
    plain = create("speaker", normalize_volume=False, trim_silence=False)
    ours = plain.encode([(prepared, RATE)])
    np.testing.assert_allclose(ours.tokens[0].numpy(), partials, atol=1e-4)
    np.testing.assert_allclose(ours.pooled[0].numpy(), embed, atol=1e-4)
    # Our own volume normalisation and energy-based silence trimming stay close to theirs.
    assert float(speaker.encode([(wave, RATE)]).pooled[0] @ torch.from_numpy(embed)) > 0.99


def test_speaker_same_voice_is_closer_than_different_voices(speaker: Encoder) -> None:
    voices = [
        Voice("flite", "slt"),
        Voice("flite", "rms"),
        Voice("flite", "awb"),
        Voice("espeak-ng", "en-us"),
    ]
    texts = ["the red square is left of the blue circle", "seven plus two makes nine today"]
    clips = [(synthesize(text, voice), RATE) for voice in voices for text in texts]
    sims = cosine_matrix(speaker.encode(clips).pooled, centre=False)
    who = np.repeat(np.arange(len(voices)), len(texts))
    same = (who[:, None] == who[None, :]) & ~np.eye(len(who), dtype=bool)
    different = who[:, None] != who[None, :]
    assert sims[same].mean() > sims[different].mean() + 0.15
    np.fill_diagonal(sims, -np.inf)
    assert (who[sims.argmax(axis=1)] == who).mean() >= 0.75


# --- logmel-cnn --------------------------------------------------------------------------------


def test_logmel_cnn_contract_and_gradients() -> None:
    torch.manual_seed(0)
    encoder = create("logmel-cnn", dim=48, n_mels=32)
    assert encoder.trainable and encoder.dim == 48
    raws = [noise_clip(0.5, 15), noise_clip(1.7, 16)]
    encoder.eval()
    # 0.5 s → 51 frames → 26 → 13 tokens; 1.7 s → 171 → 86 → 43 (25 tokens per second).
    check_contract(encoder, raws, [13, 43], atol=1e-5)
    check_gradients(encoder, raws)


def test_logmel_cnn_refuses_clips_over_max_seconds() -> None:
    encoder = create("logmel-cnn", max_seconds=1.0)
    with pytest.raises(InputTooLargeError):
        encoder.preprocess(wav_bytes(noise_clip(1.5, 17)[0]))


# --- shared ------------------------------------------------------------------------------------


def test_audio_encoders_are_registered_with_descriptions() -> None:
    names = list_encoders()
    for name in AUDIO_ENCODERS:
        assert name in names
        assert describe(name)


@pytest.fixture(scope="module")
def all_encoders(
    whisper: Encoder, speaker: Encoder, tiny_whisper_dirs: tuple[Path, Path]
) -> list[Encoder]:
    return [
        whisper,
        speaker,
        create("hf-audio", model=str(tiny_whisper_dirs[0])),
        create("logmel-cnn"),
    ]


def test_bad_audio_raises_typed_errors(all_encoders: list[Encoder], tmp_path: Path) -> None:
    wav2vec2 = create("hf-audio", model=str(tiny_wav2vec2_dir(tmp_path, "group")))
    no_samples = wav_bytes(np.zeros(0, dtype=np.float32))
    for encoder in [*all_encoders, wav2vec2]:
        with pytest.raises(EmptyInputError):
            encoder.preprocess(b"")
        with pytest.raises(EmptyInputError):
            encoder.preprocess(no_samples)
        with pytest.raises(CorruptInputError):
            encoder.preprocess(no_samples[:30])
    with pytest.raises(InputError, match="too short"):
        wav2vec2.preprocess((np.zeros(40, dtype=np.float32), RATE))
