"""The text-to-image model: a frozen text encoder's tokens condition a :class:`TextUNet` trained
by flow matching; a learned empty prompt stands in for "no text" (classifier-free guidance).

A generator folder holds ``config.json`` (what to rebuild: the text encoder entry and the UNet's
sizes), ``model.safetensors`` (the UNet and the empty prompt; the text encoder's weights come
from its package) and ``samples/`` (grids written while training).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from omnifuse.config.schema import check_keys, mapping, section
from omnifuse.encoders.base import Encoder
from omnifuse.errors import ConfigError, EmptyInputError, InputTooLargeError, InvalidValueError
from omnifuse.fileio import write_json_atomic
from omnifuse.generate.flow import SAMPLERS, Sampler, Velocity, guided, sample
from omnifuse.generate.unet import TextUNet, UNetConfig

FORMAT = "omnifuse-generator"
MAX_STEPS = 1000
MAX_IMAGES = 64
DEFAULT_GUIDANCE = 3.0
"""Classifier-free guidance when none is asked for: chosen on the world generator's val prompts
(five images each), where 2–4 read back a prompt best and 5 and more lose it (prompt retrieval
0.52 / 0.50 / 0.49 / 0.43 at 2 / 3 / 4 / 5; docs/BENCHMARKS.md, "Text → image generation")."""


@dataclass
class GeneratorConfig:
    """What a generator is: its text encoder entry, the UNet, and prompt limits."""

    text_encoder: dict[str, Any] = field(default_factory=lambda: {"name": "minilm"})
    unet: UNetConfig = field(default_factory=UNetConfig)
    max_prompt_tokens: int = 32
    max_prompt_chars: int = 400

    @classmethod
    def from_dict(cls, raw: Any) -> GeneratorConfig:
        data = mapping(raw, "model")
        check_keys(cls, data, "model.")
        unet = section(UNetConfig, data.pop("unet", None), "model.unet.")
        return cls(**{**data, "unet": unet})

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def check_prompts(prompts: Sequence[str], max_chars: int) -> list[str]:
    """Prompts as given, or an input error naming the bad one (empty, too long, not text)."""
    if not prompts:
        raise EmptyInputError("no prompt given", modality="text")
    if len(prompts) > MAX_IMAGES:
        raise InputTooLargeError(f"{len(prompts)} prompts; at most {MAX_IMAGES}", modality="text")
    checked = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise InvalidValueError(f"prompt {i} is not text", modality="text")
        if not prompt.strip():
            raise EmptyInputError(f"prompt {i} is empty", modality="text")
        if len(prompt) > max_chars:
            raise InputTooLargeError(
                f"prompt {i} has {len(prompt)} characters; at most {max_chars}", modality="text"
            )
        checked.append(prompt.strip())
    return checked


def check_sampling(steps: int, guidance: float, sampler: str = "euler") -> None:
    """Step count, guidance scale and sampler a generator can use, or a typed error naming the
    bad one."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise InvalidValueError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
    if not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
        raise InvalidValueError(f"guidance must be a finite number ≥ 0, got {guidance!r}")
    if sampler not in SAMPLERS:
        raise InvalidValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")


class TextToImage(nn.Module):
    """The UNet plus the empty prompt; the frozen text encoder is attached, not owned."""

    def __init__(self, config: GeneratorConfig, text_encoder: Encoder | None = None) -> None:
        super().__init__()
        self.config = config
        self.unet = TextUNet(config.unet)
        self.null_context = nn.Parameter(torch.zeros(1, 1, config.unet.context_dim))
        # kept outside the module tree: its weights come from its package, not this folder
        object.__setattr__(self, "_text_encoder", text_encoder)

    @property
    def text_encoder(self) -> Encoder:
        """The frozen text encoder, built from the config entry on first use."""
        attached: Encoder | None = self.__dict__["_text_encoder"]
        if attached is not None:
            return attached
        from omnifuse.models.encoders import build_encoder

        encoder = build_encoder(self.config.text_encoder)
        expected = self.config.unet.context_dim
        if encoder.modality != "text" or encoder.dim != expected:
            raise ConfigError(
                f"text_encoder {self.config.text_encoder['name']!r} gives {encoder.modality} "
                f"tokens of {encoder.dim}; the UNet expects text tokens of {expected}"
            )
        encoder.requires_grad_(False).eval()  # frozen: its tokens condition, it never learns
        object.__setattr__(self, "_text_encoder", encoder)
        return encoder

    def encode_prompts(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token features (B, T, D) and mask of the prompts, cut to ``max_prompt_tokens``."""
        checked = check_prompts(prompts, self.config.max_prompt_chars)
        with torch.no_grad():
            encoded = self.text_encoder.encode(checked)
        limit = self.config.max_prompt_tokens
        return encoded.tokens[:, :limit].float(), encoded.mask[:, :limit]

    def drop_prompts(
        self, context: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace the rows where ``drop`` is True by the empty prompt (one real token)."""
        if not bool(drop.any()):
            return context, mask
        null = self.null_context.expand(context.shape[0], context.shape[1], -1)
        first_only = torch.zeros_like(mask)
        first_only[:, 0] = True
        context = torch.where(drop[:, None, None], null.to(context.dtype), context)
        return context, torch.where(drop[:, None], first_only, mask)

    def velocity(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return self.unet(x, t, context, mask)

    def initial_noise(self, count: int, seed: int) -> torch.Tensor:
        """The starting noise of ``count`` images, drawn on the CPU from a generator seeded here
        (so a seed gives the same noise on every device)."""
        size, channels = self.config.unet.image_size, self.config.unet.channels
        generator = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(count, channels, size, size, generator=generator)
        return noise.to(next(self.parameters()).device)

    def guided_velocity(
        self, context: torch.Tensor, mask: torch.Tensor, guidance: float
    ) -> Velocity:
        """The sampler's velocity for these prompts: with guidance ≠ 1, the prompted and the
        empty-prompt velocities of one doubled batch, mixed by :func:`~.flow.guided`."""
        if guidance == 1.0:
            return lambda x, t: self.velocity(x, t, context, mask)
        empty, empty_mask = self.drop_prompts(
            context, mask, torch.ones(len(context), dtype=torch.bool, device=context.device)
        )
        both, both_mask = torch.cat([context, empty]), torch.cat([mask, empty_mask])
        return guided(lambda x, t: self.velocity(x, t, both, both_mask), guidance)

    @torch.no_grad()
    def sample_pixels(
        self,
        prompts: Sequence[str],
        *,
        steps: int = 30,
        guidance: float = DEFAULT_GUIDANCE,
        seed: int = 0,
        sampler: Sampler = "euler",
    ) -> torch.Tensor:
        """Images of the prompts as a (B, C, H, W) tensor in [−1, 1], before rounding to 8 bits."""
        check_sampling(steps, guidance, sampler)
        context, mask = self.encode_prompts(prompts)
        device = next(self.parameters()).device
        context, mask = context.to(device), mask.to(device)
        noise = self.initial_noise(len(context), seed)
        was_training = self.training
        self.eval()
        try:
            velocity = self.guided_velocity(context, mask, float(guidance))
            return sample(velocity, noise, steps=steps, sampler=sampler)
        finally:
            self.train(was_training)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        steps: int = 30,
        guidance: float = DEFAULT_GUIDANCE,
        seed: int = 0,
        sampler: Sampler = "euler",
    ) -> list[Image.Image]:
        """One image per prompt; the same prompts, steps, guidance, sampler and seed give the
        same pixels (the noise comes from a generator seeded per call)."""
        return to_pil(
            self.sample_pixels(prompts, steps=steps, guidance=guidance, seed=seed, sampler=sampler)
        )


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, C, H, W) in [−1, 1] → 8-bit RGB images."""
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    array = pixels.permute(0, 2, 3, 1).numpy()
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return [Image.fromarray(np.ascontiguousarray(a)) for a in array]


def save_generator(model: TextToImage, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    write_json_atomic(
        folder / "config.json",
        {"format": FORMAT, "version": 1, "model": model.config.to_dict(), **(extra or {})},
    )
    return folder


def load_generator(folder: str | Path, *, device: str = "cpu") -> TextToImage:
    """A saved generator, in eval mode (its text encoder is built on first use)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"{folder} is not a generator folder (no config.json)")
    data = json.loads(config_path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ConfigError(f"{folder} holds {data.get('format')!r}, not a text-to-image generator")
    model = TextToImage(GeneratorConfig.from_dict(data["model"]))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.to(device).eval()
