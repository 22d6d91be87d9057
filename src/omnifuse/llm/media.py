"""Images and audio clips inside chat messages: checking them once, and encoding them the way
backends send them on (PNG data URLs for images, base64 WAV for audio, as the OpenAI chat API
and llama.cpp's multimodal chat handlers expect).

A message holds decoded media, not files or URLs: fetching and decoding with size limits is
:mod:`omnifuse.io`'s job, so a backend never reads anything a caller did not already accept.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from omnifuse.errors import InvalidValueError

if TYPE_CHECKING:
    from PIL.Image import Image

    from omnifuse.llm.base import ChatMessage

AudioClip = tuple[np.ndarray, int]
"""A mono float32 wave and its sample rate in Hz."""

MODALITY_NAMES = {"image": "images", "audio": "audio clips"}


def check_images(images: object) -> tuple[Image, ...]:
    """``images`` as a tuple of PIL images; InvalidValueError naming the first that is not one."""
    from PIL import Image as PILImage

    items = _as_tuple(images, "images")
    for i, image in enumerate(items):
        if not isinstance(image, PILImage.Image):
            raise InvalidValueError(
                f"images[{i}] must be a PIL image, got {type(image).__name__}", modality="image"
            )
        if image.width < 1 or image.height < 1:
            raise InvalidValueError(f"images[{i}] has no pixels ({image.size})", modality="image")
    return items


def check_audio(audio: object) -> tuple[AudioClip, ...]:
    """``audio`` as a tuple of (mono float32 wave, sample rate) pairs; InvalidValueError naming
    the first clip that is not one (other float dtypes are converted to float32)."""
    clips = []
    for i, clip in enumerate(_as_tuple(audio, "audio")):
        label = f"audio[{i}]"
        if not isinstance(clip, tuple | list) or len(clip) != 2:
            raise InvalidValueError(
                f"{label} must be a (wave, sample_rate) pair, got {type(clip).__name__}",
                modality="audio",
            )
        wave, rate = clip
        if not isinstance(wave, np.ndarray) or wave.ndim != 1 or wave.size == 0:
            shape = getattr(wave, "shape", type(wave).__name__)
            raise InvalidValueError(
                f"{label} wave must be a non-empty 1-D numpy array (mono), got {shape}",
                modality="audio",
            )
        if not np.issubdtype(wave.dtype, np.floating) or not np.isfinite(wave).all():
            raise InvalidValueError(
                f"{label} wave must hold finite floats, got dtype {wave.dtype}", modality="audio"
            )
        if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
            raise InvalidValueError(
                f"{label} sample rate must be a positive integer, got {rate!r}", modality="audio"
            )
        clips.append((wave.astype(np.float32, copy=False), int(rate)))
    return tuple(clips)


def _as_tuple(items: object, name: str) -> tuple[Any, ...]:
    if isinstance(items, tuple | list):
        return tuple(items)
    raise InvalidValueError(f"{name} must be a tuple, got {type(items).__name__}")


def media_of(messages: Iterable[ChatMessage]) -> set[str]:
    """The modalities besides text that ``messages`` carry."""
    found = set()
    for message in messages:
        if message.images:
            found.add("image")
        if message.audio:
            found.add("audio")
    return found


def refuse_unsupported(
    messages: Sequence[ChatMessage], modalities: frozenset[str], backend: str
) -> None:
    """InvalidValueError when ``messages`` carry media that ``backend`` cannot take natively."""
    missing = sorted(media_of(messages) - modalities)
    if missing:
        what = " and ".join(MODALITY_NAMES.get(m, m) for m in missing)
        raise InvalidValueError(
            f"the {backend} backend cannot take {what} (it takes {sorted(modalities)}); "
            "describe them as text first (the assistant's perception) or configure a backend "
            "that sees or hears them",
            modality=missing[0],
        )


def png_bytes(image: Image) -> bytes:
    """``image`` as PNG (RGB or RGBA kept; other modes converted to RGB)."""
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_data_url(image: Image) -> str:
    """A ``data:image/png;base64,…`` URL of ``image``: the form every OpenAI-compatible server
    and llama.cpp's chat handlers accept without fetching anything."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def wav_bytes(clip: AudioClip) -> bytes:
    """A 16-bit PCM WAV of a mono clip (clipped to [-1, 1]), as ``input_audio`` parts carry."""
    import soundfile as sf

    wave, rate = clip
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def wav_base64(clip: AudioClip) -> str:
    return base64.b64encode(wav_bytes(clip)).decode("ascii")


def same_media(a: ChatMessage, b: ChatMessage) -> bool:
    """Whether two messages carry the same images and audio (pixel- and sample-exact)."""
    if len(a.images) != len(b.images) or len(a.audio) != len(b.audio):
        return False
    for x, y in zip(a.images, b.images, strict=True):
        if x is not y and (x.size != y.size or x.mode != y.mode or x.tobytes() != y.tobytes()):
            return False
    for (wx, rx), (wy, ry) in zip(a.audio, b.audio, strict=True):
        if rx != ry or not np.array_equal(wx, wy):
            return False
    return True
