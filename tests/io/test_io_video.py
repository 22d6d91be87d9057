"""load_video on good inputs: sampled frames, their times and the soundtrack are right."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from omnifuse.errors import ConfigError, InputTooLargeError
from omnifuse.io import DecodeLimits, VideoClip, load_video

if TYPE_CHECKING:
    from conftest import Media

CONTAINERS = [
    ("clip.mp4", "mp4", "mpeg4", "aac"),
    ("clip.webm", "webm", "libvpx", "libopus"),
    ("clip.mkv", "matroska", "mpeg4", "flac"),
    ("clip.avi", "avi", "mjpeg", "pcm_s16le"),
]


@pytest.mark.parametrize(("name", "container", "codec", "audio_codec"), CONTAINERS)
def test_frames_times_and_soundtrack(
    media: Media, name: str, container: str, codec: str, audio_codec: str
) -> None:
    clip = load_video(
        media.encode_video(media.path(name), container, codec, audio_codec), num_frames=4
    )
    assert isinstance(clip, VideoClip)
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (4, 48, 64, 3)
    # Targets at (i + 0.5) * 2 s / 4 = 0.25, 0.75, 1.25, 1.75 s show frames 2, 7, 12 and 17.
    np.testing.assert_allclose(clip.frame_times, [0.2, 0.7, 1.2, 1.7], atol=1e-6)
    centres = [media.square_centre(frame) for frame in clip.frames]
    np.testing.assert_allclose(centres, [media.square_x(k) + 3.5 for k in (2, 7, 12, 17)], atol=0.5)
    assert clip.fps == pytest.approx(10)
    assert clip.duration_s == pytest.approx(2.0, abs=0.02)
    assert clip.sample_rate == 16000
    assert clip.audio is not None and clip.audio.dtype == np.float32
    assert clip.audio.size == pytest.approx(32000, abs=160)
    assert media.peak_hz(clip.audio, 16000) == pytest.approx(440, abs=1)


def test_stream_without_stated_duration_is_timed_from_its_packets(media: Media) -> None:
    """Browser recordings (live WebM) carry no duration in their headers."""
    path = media.encode_video(
        media.path("live.webm"), "webm", "libvpx", "libopus", muxer_options={"live": "1"}
    )
    clip = load_video(path, num_frames=4)
    assert clip.duration_s == pytest.approx(2.0)
    np.testing.assert_allclose(clip.frame_times, [0.2, 0.7, 1.2, 1.7], atol=1e-6)
    assert clip.audio is not None
    assert clip.audio.size == pytest.approx(32000, abs=160)
    with pytest.raises(InputTooLargeError, match="over the limit of 1 s"):
        load_video(path, limits=DecodeLimits(max_video_seconds=1.0))


def test_video_without_sound_has_no_audio(media: Media) -> None:
    clip = load_video(media.mp4(audio=False), num_frames=2)
    assert clip.audio is None
    assert clip.frames.shape == (2, 48, 64, 3)


def test_more_frames_than_the_clip_holds_repeats_frames(media: Media) -> None:
    clip = load_video(media.mp4(), num_frames=40)
    assert clip.frames.shape[0] == 40
    assert np.all(np.diff(clip.frame_times) >= 0)
    assert len(np.unique(clip.frame_times)) == 20
    np.testing.assert_allclose(clip.frame_times[[0, 1, 2]], [0.0, 0.0, 0.1], atol=1e-6)


def test_one_frame_is_the_middle_one(media: Media) -> None:
    clip = load_video(media.mp4(), num_frames=1)
    np.testing.assert_allclose(clip.frame_times, [1.0], atol=1e-6)
    assert media.square_centre(clip.frames[0]) == pytest.approx(media.square_x(10) + 3.5, abs=0.5)


def test_bytes_and_path_agree_and_rate_is_honoured(media: Media) -> None:
    path = media.mp4()
    from_path = load_video(path, num_frames=3, sample_rate=8000)
    from_bytes = load_video(path.read_bytes(), num_frames=3, sample_rate=8000)
    assert np.array_equal(from_path.frames, from_bytes.frames)
    assert from_path.audio is not None and from_bytes.audio is not None
    assert np.array_equal(from_path.audio, from_bytes.audio)
    assert from_path.audio.size == pytest.approx(16000, abs=80)


def test_animated_gif_is_a_video(media: Media) -> None:
    frames = []
    for k in range(10):
        image = np.zeros((48, 64, 3), np.uint8)
        image[16:32, media.square_x(k) : media.square_x(k) + 8] = 255
        frames.append(Image.fromarray(image))
    path = media.path("moving.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    clip = load_video(path, num_frames=2)
    np.testing.assert_allclose(clip.frame_times, [0.2, 0.7], atol=1e-6)
    assert [media.square_centre(f) for f in clip.frames] == [
        media.square_x(2) + 3.5,
        media.square_x(7) + 3.5,
    ]
    assert clip.audio is None


def test_limits_on_duration_and_frame_size(media: Media) -> None:
    path = media.mp4()
    with pytest.raises(InputTooLargeError, match=r"lasts 2\.0 s"):
        load_video(path, limits=DecodeLimits(max_video_seconds=1.5))
    with pytest.raises(InputTooLargeError, match="64x48"):
        load_video(path, limits=DecodeLimits(max_pixels=64 * 48 - 1))


@pytest.mark.parametrize("arguments", [{"num_frames": 0}, {"num_frames": True}, {"sample_rate": 0}])
def test_bad_arguments_are_config_errors(media: Media, arguments: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_video(media.mp4(), **arguments)  # type: ignore[arg-type]
