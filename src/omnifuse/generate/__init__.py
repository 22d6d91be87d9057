"""Text-to-image generation: a small UNet with cross-attention to a frozen text encoder's tokens,
trained by flow matching through the one training loop and sampled with classifier-free
guidance by an Euler or a Heun sampler (:mod:`omnifuse.generate.model`,
:mod:`omnifuse.generate.flow`, :mod:`omnifuse.generate.train`)."""

from omnifuse.generate.flow import SAMPLERS, Sampler
from omnifuse.generate.model import (
    GeneratorConfig,
    TextToImage,
    check_prompts,
    check_sampling,
    load_generator,
    save_generator,
)
from omnifuse.generate.train import GenerateConfig, read_generate_config, train_generator
from omnifuse.generate.unet import TextUNet, UNetConfig

__all__ = [
    "SAMPLERS",
    "GenerateConfig",
    "GeneratorConfig",
    "Sampler",
    "TextToImage",
    "TextUNet",
    "UNetConfig",
    "check_prompts",
    "check_sampling",
    "load_generator",
    "read_generate_config",
    "save_generator",
    "train_generator",
]
