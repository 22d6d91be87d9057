"""A matcher: a small cross-encoder that reads a description and an image together.

Cosine similarity compares two vectors pooled apart, so a description that says which colour
goes with which shape, or what lies above what, has to survive pooling before it can be
compared; in practice "a red circle above a blue square" and the same words with "below" embed
at cosine 0.997. A matcher (image–text matching, as in ALBEF and BLIP) instead attends over the
description's tokens and the image's grid tokens at once — each image token keeps its place on
the grid through a learned position — and gives one logit: does the description fit the image?

It reads the aligned model's own frozen encoders' tokens (prepared as the model's heads prepare
them), so it lives in the aligned model's folder (``matcher.json`` + ``matcher.safetensors``)
and its logits are calibrated like the cosine similarities (Platt scaling, a threshold). A
recording is matched with an image through its transcript (:func:`heard_text`): the speech
recogniser omnifuse already uses turns the spoken description into the words the matcher
reads.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnifuse.align.model import AlignedModel
from omnifuse.encoders.base import Encoder
from omnifuse.errors import ConfigError
from omnifuse.eval.text_metrics import normalize_transcript
from omnifuse.fileio import FolderFormat, cpu_state
from omnifuse.speech.asr import ASR
from omnifuse.types import pad_tokens


class InvalidMatcherError(ConfigError):
    """A matcher's files that cannot be loaded."""


MATCHER_FOLDER = FolderFormat(
    "omnifuse-matcher",
    "matcher",
    InvalidMatcherError,
    config_file="matcher.json",
    weights_file="matcher.safetensors",
    metrics_file="matcher-metrics.json",
)


@dataclass(frozen=True)
class MatcherConfig:
    """The matcher's shape: ``text`` and ``image`` the modalities it reads (``text`` may be any
    token sequence the aligned model encodes, ``image`` the grid side), their token widths,
    the transformer's width, depth and heads, the most tokens per side it reads (longer
    sequences are cut), and ``image_encoder``: the entry of the frozen encoder it reads images
    with when not the aligned model's own (:func:`fine_grid_entry`: the same network read on a
    finer grid)."""

    text: str = "text"
    image: str = "image"
    text_dim: int = 384
    image_dim: int = 320
    dim: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    max_tokens: int = 256
    pixels: int = 16
    patch: int = 4
    image_encoder: dict[str, Any] | None = None

    @property
    def patches(self) -> int:
        """How many pixel patches each image has (0 without the pixel view): as many as its
        grid tokens."""
        return (self.pixels // self.patch) ** 2 if self.pixels else 0

    def __post_init__(self) -> None:
        if self.pixels and (self.patch < 1 or self.pixels % self.patch):
            raise ConfigError(f"matcher pixels {self.pixels} must be a multiple of patch")
        if min(self.text_dim, self.image_dim, self.dim, self.layers, self.heads) < 1:
            raise ConfigError("matcher widths, layers and heads must be at least 1")
        if self.dim % self.heads:
            raise ConfigError(f"matcher dim {self.dim} is not a multiple of heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0 or self.max_tokens < 1:
            raise ConfigError("matcher dropout must lie in [0, 1) and max_tokens be positive")


class Matcher(nn.Module):
    """``[CLS] + description tokens + image tokens`` through a Transformer encoder (one
    stream, a learned position per side) → the logit that the description fits the image.

    With the pixel view (``pixels`` > 0) each image token also carries the raw pixels of its
    grid cell: the image squeezed to ``pixels``² and cut into ``patch``² patches, one per grid
    token (as ViLT reads images from patches). An ImageNet encoder's grid features keep what an
    object is better than its exact hue or where in its cell it sits, and those are what a
    changed colour or a reversed relation turns on."""

    def __init__(self, config: MatcherConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.text_in = nn.Sequential(nn.Linear(config.text_dim, d), nn.LayerNorm(d))
        self.image_in = nn.Sequential(nn.Linear(config.image_dim, d), nn.LayerNorm(d))
        self.text_position = nn.Embedding(config.max_tokens, d)
        self.image_position = nn.Embedding(config.max_tokens, d)
        self.pixel_in = nn.Sequential(nn.Linear(3 * config.patch**2, d), nn.LayerNorm(d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(
            d,
            config.heads,
            dim_feedforward=2 * d,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))
        nn.init.normal_(self.cls, std=0.02)

    def forward(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        image: torch.Tensor,
        image_mask: torch.Tensor,
        patches: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, text_dim) and (B, I, image_dim) tokens with their (B, ·) masks, and with the
        pixel view its (B, P, 3·patch²) patches → (B,) logits."""
        cut = self.config.max_tokens
        dtype = self.cls.dtype  # tokens may be stored at half precision
        text, text_mask = text[:, :cut].to(dtype), text_mask[:, :cut]
        image, image_mask = image[:, :cut].to(dtype), image_mask[:, :cut]
        parts = [
            self.cls.expand(len(text), -1, -1),
            self.text_in(text) + self.text_position.weight[: text.shape[1]],
            self.image_in(image) + self.image_position.weight[: image.shape[1]],
        ]
        keep = [text_mask.new_ones(len(text), 1), text_mask, image_mask]
        if self.config.patches:
            if patches is None or patches.shape[1] != self.config.patches:
                raise ValueError(f"this matcher reads {self.config.patches} pixel patches")
            if patches.shape[1] != image.shape[1]:
                raise ValueError("the pixel patches must tile the image's grid tokens one to one")
            parts[2] = parts[2] + self.pixel_in(patches)
        hidden = self.encoder(torch.cat(parts, dim=1), src_key_padding_mask=~torch.cat(keep, 1))
        return self.out(hidden[:, 0]).squeeze(-1)

    def score(
        self,
        texts: Sequence[torch.Tensor],
        images: Sequence[torch.Tensor],
        patches: Sequence[torch.Tensor] | None = None,
        batch_size: int = 256,
    ) -> torch.Tensor:
        """Logits of each (T_i, D) description with its (I_i, D) image (and its pixel patches,
        when the matcher reads them), in eval mode."""
        if len(texts) != len(images) or (patches is not None and len(patches) != len(texts)):
            raise ValueError("score needs as many descriptions as images")
        was_training = self.training
        self.eval()
        out = []
        try:
            with torch.no_grad():
                for start in range(0, len(texts), batch_size):
                    end = start + batch_size
                    t, tm = pad_tokens(list(texts[start:end]))
                    i, im = pad_tokens(list(images[start:end]))
                    p = None if patches is None else torch.stack(list(patches[start:end]))
                    out.append(self(t, tm, i, im, p).float().cpu())
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)


def pixel_patches(raws: Sequence[Any], config: MatcherConfig) -> list[torch.Tensor]:
    """Each image (path, bytes or PIL image) squeezed to ``pixels``² and cut into
    (P, 3·patch²) patches in [-1, 1], row by row; nothing without the pixel view."""
    from omnifuse.encoders.image import image_pixels, normalize_pixels

    out = []
    for raw in raws:
        pixels = normalize_pixels(image_pixels(raw, config.pixels, center_crop=False))
        p = config.patch
        grid = pixels.unfold(1, p, p).unfold(2, p, p)  # (3, n, n, p, p)
        out.append(grid.permute(1, 2, 0, 3, 4).reshape(-1, 3 * p * p).contiguous())
    return out


def save_matcher(matcher: Matcher, folder: str | Path, metrics: dict[str, Any]) -> None:
    """Write ``matcher.json`` / ``matcher.safetensors`` / ``matcher-metrics.json`` into the
    aligned model's folder."""
    MATCHER_FOLDER.write(folder, cpu_state(matcher), {"matcher": asdict(matcher.config)}, metrics)


def has_matcher(folder: str | Path) -> bool:
    return (Path(folder) / MATCHER_FOLDER.config_file).is_file()


def load_matcher(folder: str | Path) -> Matcher:
    """The matcher saved beside an aligned model, in eval mode."""
    data = MATCHER_FOLDER.read_config(folder)
    try:
        config = MatcherConfig(**data["matcher"])
    except (KeyError, TypeError) as err:
        raise InvalidMatcherError(
            f"{folder}: matcher.json does not describe a matcher ({err})"
        ) from None
    matcher = Matcher(config)
    MATCHER_FOLDER.load_weights(matcher, folder)
    return matcher.eval()


def match_logits(
    matcher: Matcher, model: AlignedModel, texts: Sequence[str], images: Sequence[Any]
) -> np.ndarray:
    """The matcher's logit of each text with the image beside it (raw inputs; each distinct
    text and image read once)."""
    text_tokens = token_features(model, "text", texts)
    image_tokens = image_features(matcher.config, model, images)
    patches = None
    if matcher.config.patches:
        keys = [_key(image) for image in images]
        first = {key: n for n, key in reversed(list(enumerate(keys)))}
        unique = dict(
            zip(
                first,
                pixel_patches([images[n] for n in first.values()], matcher.config),
                strict=True,
            )
        )
        patches = [unique[key] for key in keys]
    logits = matcher.score(text_tokens, image_tokens, patches)
    return logits.numpy().astype(np.float64)


def _key(value: Any) -> Any:
    """What identifies a raw input: a path by its name, anything else by its identity."""
    return value if isinstance(value, str | Path) else id(value)


def heard_text(asr: ASR, raw_audio: Any, prompt: str | None = None) -> str:
    """What a recording says, as the matcher reads a description: the ASR engine's transcript
    in lower case, numbers spelt out, punctuation dropped. An engine that takes a prompt is
    given ``prompt`` (:func:`speech_prompt`: sentences like those the model was trained on),
    so it spells words as the matcher read them ("cyan", not "sine") and keeps the sentences'
    shape ("a red circle", not "red circle")."""
    return normalize_transcript(
        asr.transcribe(raw_audio, prompt=prompt if asr.takes_prompt else None).text
    )


PROMPT_WORDS = 150
"""At most this many words of training sentences in a recogniser's prompt (Whisper keeps the
last 223 tokens of a prompt)."""


def speech_prompt(texts: Sequence[str], limit: int = PROMPT_WORDS) -> str | None:
    """Training sentences that between them use every word of ``texts`` (each next one the
    sentence with the most words not yet used, while they fit in ``limit`` words), joined as
    sentences. Whisper reads its prompt as the text spoken before the clip: example sentences
    steer it towards the words and their order, where a bare list of the words mostly did
    not (world captions spoken by espeak-ng and flite, Whisper tiny.en: word error rate 0.03
    against 0.25 with the sorted vocabulary; ``bench/speech_prompt.py``)."""
    sentences = list(dict.fromkeys(t.strip().rstrip(".") for t in texts if t.strip()))
    words_of = [set(re.findall(r"[a-z]+", t.lower())) for t in sentences]
    lengths = [len(t.split()) for t in sentences]
    chosen: list[str] = []
    used: set[str] = set()
    length = 0
    while True:
        room = limit - length
        gains = [
            len(words - used) if size <= room else 0
            for size, words in zip(lengths, words_of, strict=True)
        ]
        if not gains or max(gains) == 0:
            break
        best = int(np.argmax(gains))
        chosen.append(sentences[best])
        used |= words_of[best]
        length += lengths[best]
    return ". ".join(chosen) + "." if chosen else None


def token_features(
    model: AlignedModel, modality: str, raws: Sequence[Any], *, batch_size: int = 32
) -> list[torch.Tensor]:
    """Raw inputs → each one's (T_i, D) tokens from the aligned model's frozen encoder, prepared
    as its head prepares them (the matcher's inputs); each distinct value encoded once."""
    head = model.head_for(modality)
    return encoded_tokens(
        model.encoder(modality), raws, prepare=head.prepare_tokens, batch_size=batch_size
    )


def image_features(
    config: MatcherConfig, model: AlignedModel, raws: Sequence[Any]
) -> list[torch.Tensor]:
    """The image tokens a matcher of ``config`` reads: its own image encoder's (at half
    precision, as they are many), else the aligned model's."""
    if config.image_encoder is None:
        return token_features(model, "image", raws)
    return encoded_tokens(own_encoder(config.image_encoder), raws, half=True)


def fine_grid_entry(model: AlignedModel) -> dict[str, Any]:
    """The aligned model's image encoder entry read on its finer grid (``grid: fine``: four
    times the cells, each with mid-level and final features); only EfficientNet-Lite0 has
    one."""
    entry = dict(model.specs["image"].encoder)
    if entry.get("name") != "effnet-lite0":
        raise ConfigError(
            f"a fine image grid needs the effnet-lite0 image encoder, not {entry.get('name')!r}"
        )
    return {**entry, "grid": "fine"}


_OWN_ENCODERS: dict[str, Encoder] = {}
_OWN_LOCK = threading.Lock()


def own_encoder(entry: dict[str, Any]) -> Encoder:
    """The frozen encoder of ``entry``, built once per process (thread-safe)."""
    from omnifuse.models.encoders import build_encoder

    key = json.dumps(entry, sort_keys=True)
    with _OWN_LOCK:
        if key not in _OWN_ENCODERS:
            _OWN_ENCODERS[key] = build_encoder(entry).eval().requires_grad_(False)
        return _OWN_ENCODERS[key]


def encoded_tokens(
    encoder: Encoder,
    raws: Sequence[Any],
    *,
    prepare: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
    half: bool = False,
    batch_size: int = 32,
) -> list[torch.Tensor]:
    """Each raw input's (T_i, D) real tokens from ``encoder`` (through ``prepare`` when given),
    each distinct value encoded once."""
    keys = [_key(value) for value in raws]
    first = {key: n for n, key in reversed(list(enumerate(keys)))}
    unique = [raws[n] for n in sorted(first.values())]
    found: list[torch.Tensor] = []
    for start in range(0, len(unique), batch_size):
        with torch.no_grad():
            encoded = encoder.encode(unique[start : start + batch_size], batch_size=batch_size)
        tokens, mask = encoded.tokens.float().cpu(), encoded.mask.cpu()
        if prepare is not None:
            tokens, mask = prepare(tokens, mask)
        if half:
            tokens = tokens.half()
        found.extend(tokens[n][mask[n]] for n in range(len(tokens)))
    where = {key: n for n, key in enumerate(sorted(first, key=first.__getitem__))}
    return [found[where[key]] for key in keys]
