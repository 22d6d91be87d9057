"""Video encoder: frames + soundtrack, time-aligned tokens, mean and attention pooling."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from omnifuse.data.builders import build
from omnifuse.data.manifest import load_manifest
from omnifuse.encoders import create
from omnifuse.errors import ConfigError, CorruptInputError, UnsupportedFormatError
from omnifuse.nn import masked_mean

FRAMES = 4


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("world")
    build("world", out, seed=3, size=12)
    return [s["video"] for s in load_manifest(out / "video.jsonl").samples][:3]


def _silent_clip(path: Path) -> str:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=8)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for k in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 30 * k, np.uint8), "rgb24")
            frame.pts, frame.time_base = k, fractions.Fraction(1, 8)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return str(path)


def _small_video(pool: str = "mean") -> torch.nn.Module:
    torch.manual_seed(0)
    return create(
        "video", image="cnn-image", audio="logmel-cnn", num_frames=FRAMES, temporal_pool=pool
    ).eval()


def test_tokens_are_frames_with_aligned_audio(clips: list[str]) -> None:
    encoder = _small_video()
    image_dim = encoder.image_encoder.dim
    out = encoder.encode(clips)
    assert out.tokens.shape == (3, FRAMES, encoder.dim)
    assert encoder.dim == image_dim + encoder.audio_encoder.dim
    assert out.mask.all()
    assert torch.isfinite(out.tokens).all()
    torch.testing.assert_close(out.pooled, masked_mean(out.tokens, out.mask))
    audio_half = out.tokens[..., image_dim:]
    assert audio_half.abs().sum(dim=-1).gt(0).all(), "every frame gets the audio nearest to it"
    # frames at different times get different audio states
    assert not torch.allclose(audio_half[:, 0], audio_half[:, -1])


def test_batched_equals_one_by_one(clips: list[str]) -> None:
    encoder = _small_video("attention")
    batched = encoder.encode(clips, batch_size=3)
    for i, clip in enumerate(clips):
        single = encoder.encode([clip])
        torch.testing.assert_close(single.pooled[0], batched.pooled[i], atol=1e-4, rtol=1e-4)


def test_clip_without_soundtrack_has_zero_audio_half(clips: list[str], tmp_path: Path) -> None:
    encoder = _small_video()
    out = encoder.encode([clips[0], _silent_clip(tmp_path / "silent.mp4")])
    audio_half = out.tokens[..., encoder.image_encoder.dim :]
    assert audio_half[1].abs().max() == 0
    assert audio_half[0].abs().max() > 0


def test_gradients_reach_every_parameter(clips: list[str]) -> None:
    encoder = _small_video("attention").train()
    assert encoder.trainable
    out = encoder.encode(clips[:2])
    out.pooled.square().sum().backward()
    missing = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_pretrained_default_is_frozen_and_meaningful(clips: list[str]) -> None:
    encoder = create("video", num_frames=2)
    assert not encoder.trainable
    assert encoder.dim == 1280 + 384
    out = encoder.encode(clips[:1])
    assert out.tokens.shape == (1, 2, 1664) and torch.isfinite(out.pooled).all()


def test_bad_inputs_and_config(tmp_path: Path) -> None:
    encoder = _small_video()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    with pytest.raises((CorruptInputError, UnsupportedFormatError)):
        encoder.encode([str(broken)])
    with pytest.raises(ConfigError):
        create("video", image="cnn-image", audio="logmel-cnn", temporal_pool="max")
    with pytest.raises(ConfigError):
        create("video", image="logmel-cnn", audio="cnn-image")
