"""Training a text-to-image generator through the one training loop.

::

    data:                       # the shared data section: a built-in dataset or a manifest
      dataset: world
      manifest: scenes
      size: 4000
      options: {image_size: 32, video_clips: 0, questions_per_scene: 1}
      dir: runs/data/world-gen-4000-s0
    image: image                # the image column and the prompt column
    text: caption
    model:                      # GeneratorConfig: text encoder entry, UNet sizes, prompt limits
      text_encoder: {name: minilm}
      unet: {image_size: 32, widths: [32, 64, 128], attention_levels: [1, 2]}
    train: {epochs: 400, batch_size: 64, lr: 0.0005, max_minutes: 45, grid_every: 10}
    output: runs/generate-world

Images are resized to the UNet's size and held in memory as [−1, 1] tensors; each distinct
prompt is encoded once by the frozen text encoder. Every batch draws its times and noise from a
generator seeded by the batch's samples and the epoch, so a resumed run trains on the same
noise; ``prompt_dropout`` of the prompts are replaced by the empty prompt (what guidance needs).
Validation is the flow loss on a fixed set of val samples at fixed times and noise; every
``grid_every`` epochs a grid of samples of the first val prompts goes to ``samples/``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from omnifuse.config import DataSection, read_config_file
from omnifuse.config.schema import check_keys, mapping, section
from omnifuse.data.manifest import Manifest, load_manifest
from omnifuse.data.prepare import prepare_manifest
from omnifuse.errors import ConfigError
from omnifuse.generate.flow import flow_loss, training_times
from omnifuse.generate.model import (
    DEFAULT_GUIDANCE,
    GeneratorConfig,
    TextToImage,
    save_generator,
)
from omnifuse.io import load_image
from omnifuse.progress import track
from omnifuse.train import distributed
from omnifuse.train.config import TrainConfig, TrainResult
from omnifuse.train.loop import fit, seed_everything
from omnifuse.train.objective import ModuleObjective, decay_groups, shuffled_batches

VAL_SAMPLES = 256
AVERAGE_PREFIX = "ema:"


@dataclass
class GenerateTrain(TrainConfig):
    """The training section with generation's defaults, plus classifier-free-guidance dropout and
    an exponential moving average of the weights (``ema_decay``, 0 = off; validation, the grids
    and the saved model use the average, which samples cleaner than the last step's weights),
    and the sample grids (``grid_every`` epochs, 0 = never; ``grid_prompts`` first val prompts ×
    ``grid_seeds`` seeds, sampled in ``grid_steps`` steps at ``grid_guidance``)."""

    epochs: int = 200
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.02
    patience: int | None = None
    device: str = "cpu"
    prompt_dropout: float = 0.1
    ema_decay: float = 0.999
    grid_every: int = 10
    grid_prompts: int = 8
    grid_seeds: int = 4
    grid_steps: int = 20
    grid_guidance: float = DEFAULT_GUIDANCE


@dataclass
class GenerateConfig:
    """A whole generator training run (see the module docstring)."""

    data: DataSection
    image: str = "image"
    text: str = "caption"
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    train: GenerateTrain = field(default_factory=GenerateTrain)
    output: str = "runs/generate"

    @classmethod
    def from_dict(cls, raw: Any) -> GenerateConfig:
        data = mapping(raw, "the generate config")
        check_keys(cls, data, "")
        if "data" not in data:
            raise ConfigError("missing key 'data'")
        return cls(
            data=section(DataSection, data["data"], "data.", optional=False),
            image=str(data.get("image", "image")),
            text=str(data.get("text", "caption")),
            model=GeneratorConfig.from_dict(data.get("model") or {}),
            train=section(GenerateTrain, data.get("train"), "train."),
            output=str(data.get("output", "runs/generate")),
        )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def read_generate_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> GenerateConfig:
    """A recipe name or YAML/JSON path, with ``section.key=value`` overrides, checked."""
    return GenerateConfig.from_dict(read_config_file(name_or_path, overrides)[1])


@dataclass
class Pairs:
    """Images (N, C, S, S) in [−1, 1] and, per image, the index of its prompt's tokens."""

    images: torch.Tensor
    prompt_of: list[int]
    captions: list[str]


class PromptBank:
    """Each distinct prompt's token features, encoded once by the frozen text encoder."""

    def __init__(self, model: TextToImage, captions: Sequence[str], batch_size: int = 64) -> None:
        self.index: dict[str, int] = {}
        self.tokens: list[torch.Tensor] = []
        unique = list(dict.fromkeys(captions))
        for start in track(range(0, len(unique), batch_size), "encoding prompts"):
            chunk = unique[start : start + batch_size]
            context, mask = model.encode_prompts(chunk)
            for caption, row, real in zip(chunk, context, mask, strict=True):
                self.index[caption] = len(self.tokens)
                self.tokens.append(row[real].clone())

    def batch(self, ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.tokens[i] for i in ids]
        longest = max(len(r) for r in rows)
        context = torch.zeros(len(rows), longest, rows[0].shape[-1])
        mask = torch.zeros(len(rows), longest, dtype=torch.bool)
        for i, row in enumerate(rows):
            context[i, : len(row)] = row
            mask[i, : len(row)] = True
        return context, mask


def load_pairs(
    manifest: Manifest, split: str | None, config: GenerateConfig, bank_index: dict[str, int]
) -> Pairs:
    """The split's images (resized, in [−1, 1]) and their prompts' ids in the bank."""
    rows = manifest.split(split) if split is not None else manifest.samples
    rows = [r for r in rows if config.image in r and r.get(config.text) not in (None, "")]
    size, channels = config.model.unet.image_size, config.model.unet.channels
    images = []
    for row in track(rows, f"loading {split or 'all'} images"):
        image = load_image(row[config.image]).convert("RGB" if channels == 3 else "L")
        image = image.resize((size, size), Image.Resampling.BICUBIC)
        tensor = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        images.append(tensor.view(size, size, channels).permute(2, 0, 1))
    if not images:
        raise ConfigError(f"no {split} sample has both {config.image!r} and {config.text!r}")
    stacked = torch.stack(images).float() / 127.5 - 1.0
    captions = [str(r[config.text]) for r in rows]
    return Pairs(stacked, [bank_index[c] for c in captions], captions)


class GeneratorObjective(ModuleObjective):
    """Flow matching on image–prompt pairs, with prompt dropout and seeded noise."""

    model: TextToImage

    def __init__(
        self,
        model: TextToImage,
        bank: PromptBank,
        train_pairs: Pairs,
        val_pairs: Pairs | None,
        config: GenerateTrain,
        output: Path,
    ) -> None:
        self.model, self.bank, self.config, self.output = model, bank, config, output
        self.train_pairs, self.val_pairs = train_pairs, val_pairs
        self.device = next(model.parameters()).device
        self.epoch = 0
        self.averaged = [p.detach().clone() for p in model.parameters()] if config.ema_decay else []

    def after_step(self, step: int) -> None:
        if not self.averaged:
            return
        decay = min(self.config.ema_decay, (1 + step) / (10 + step))
        current = [p.detach() for p in self.model.parameters()]
        torch._foreach_lerp_(self.averaged, current, 1.0 - decay)

    @contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """The moving average in the model's parameters for the duration (no-op without one)."""
        if not self.averaged:
            yield
            return
        parameters: list[torch.Tensor] = list(self.model.parameters())
        current = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            torch._foreach_copy_(parameters, self.averaged)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(parameters, current)

    def use_averaged_weights(self) -> None:
        """Replace the model's weights by the moving average for good (before saving)."""
        if self.averaged:
            with torch.no_grad():
                parameters: list[torch.Tensor] = list(self.model.parameters())
                torch._foreach_copy_(parameters, self.averaged)

    def weights(self) -> dict[str, torch.Tensor]:
        weights = super().weights()
        for index, tensor in enumerate(self.averaged):
            weights[f"{AVERAGE_PREFIX}{index}"] = tensor.detach().cpu().clone()
        return weights

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        own = {k: v for k, v in weights.items() if not k.startswith(AVERAGE_PREFIX)}
        super().load_weights(own)
        for index, tensor in enumerate(self.averaged):
            saved = weights.get(f"{AVERAGE_PREFIX}{index}")
            tensor.copy_(saved if saved is not None else own_parameter(self.model, index))

    def parameter_groups(self) -> list[dict[str, Any]]:
        return decay_groups(self.model.parameters(), self.config.weight_decay)

    def batch_indices(self, epoch: int) -> list[Sequence[int]]:
        self.epoch = epoch
        seed = self.config.seed * 1_000_003 + epoch
        return shuffled_batches(len(self.train_pairs.images), self.config.batch_size, seed)

    def materialize(self, batches: Sequence[Sequence[int]]) -> Iterator[dict[str, torch.Tensor]]:
        for indices in batches:
            seed = (self.config.seed * 1_000_003 + self.epoch) * 1_000_003 + int(indices[0])
            generator = torch.Generator().manual_seed(seed % 2**63)
            yield self._batch(self.train_pairs, indices, generator, self.config.prompt_dropout)

    def _batch(
        self, pairs: Pairs, indices: Sequence[int], generator: torch.Generator, dropout: float
    ) -> dict[str, torch.Tensor]:
        clean = pairs.images[list(indices)]
        context, mask = self.bank.batch([pairs.prompt_of[i] for i in indices])
        return {
            "clean": clean.to(self.device),
            "context": context.to(self.device),
            "mask": mask.to(self.device),
            "t": training_times(len(indices), generator).to(self.device),
            "noise": torch.randn(clean.shape, generator=generator).to(self.device),
            "drop": (torch.rand(len(indices), generator=generator) < dropout).to(self.device),
        }

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        context, mask = self.model.drop_prompts(batch["context"], batch["mask"], batch["drop"])
        return flow_loss(
            lambda x, t: self.model.velocity(x, t, context, mask),
            batch["clean"],
            batch["t"],
            batch["noise"],
        )

    @torch.no_grad()
    def validate(self) -> dict[str, Any] | None:
        if self.val_pairs is None:
            return None
        self.model.eval()
        with self.averaged_weights():
            return self._validate(self.val_pairs)

    def _validate(self, val_pairs: Pairs) -> dict[str, Any]:
        count = min(VAL_SAMPLES, len(val_pairs.images))
        generator = torch.Generator().manual_seed(12345)
        losses = []
        for start in range(0, count, self.config.eval_batch_size):
            indices = list(range(start, min(count, start + self.config.eval_batch_size)))
            losses.append(self.loss(self._batch(val_pairs, indices, generator, 0.0)) * len(indices))
        record: dict[str, Any] = {"loss": float(torch.stack(losses).sum()) / count}
        every = self.config.grid_every
        if every and (self.epoch + 1) % every == 0 and distributed.is_main():
            record["grid"] = str(self.write_grid(f"epoch-{self.epoch + 1:04d}.png"))
        return record

    def write_grid(self, name: str) -> Path:
        """Samples of the first val prompts: one row per prompt, one column per seed."""
        prompts = list(dict.fromkeys(self.val_pairs.captions if self.val_pairs else []))
        prompts = prompts[: self.config.grid_prompts]
        return write_sample_grid(
            self.model,
            prompts,
            self.output / "samples" / name,
            seeds=self.config.grid_seeds,
            steps=self.config.grid_steps,
            guidance=self.config.grid_guidance,
        )


def own_parameter(model: torch.nn.Module, index: int) -> torch.Tensor:
    """The model's ``index``-th parameter (a checkpoint from before averaging starts from it)."""
    return list(model.parameters())[index].detach()


def write_sample_grid(
    model: TextToImage,
    prompts: Sequence[str],
    path: Path,
    *,
    seeds: int = 4,
    steps: int = 20,
    guidance: float = DEFAULT_GUIDANCE,
    scale: int = 2,
) -> Path:
    """A PNG with one row per prompt and one column per seed (upscaled ``scale``×)."""
    rows = [
        [model.generate([p], steps=steps, guidance=guidance, seed=s)[0] for s in range(seeds)]
        for p in prompts
    ]
    size = model.config.unet.image_size * scale
    grid = Image.new("RGB", (size * seeds, size * max(1, len(rows))), "white")
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            grid.paste(image.resize((size, size), Image.Resampling.NEAREST), (c * size, r * size))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    (path.with_suffix(".txt")).write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return path


def train_generator(config: GenerateConfig) -> tuple[TextToImage, TrainResult]:
    """Build the data, train the generator and save it into ``config.output``."""
    output = Path(config.output)
    seed_everything(config.train.seed)
    manifest_path = prepare_manifest(config.data, output.parent / "data")
    manifest = load_manifest(manifest_path)
    for column in (config.image, config.text):
        if column not in manifest.schema.modalities:
            raise ConfigError(f"{column!r} is not a modality column of {manifest_path}")
    model = TextToImage(config.model).to(config.train.device)
    texts = [str(s[config.text]) for s in manifest.samples if s.get(config.text)]
    bank = PromptBank(model, texts)
    splits = config.data.splits
    train_pairs = load_pairs(manifest, splits["train"], config, bank.index)
    val_pairs = None
    if manifest.schema.split is not None and manifest.split(splits.get("val", "val")):
        val_pairs = load_pairs(manifest, splits.get("val", "val"), config, bank.index)
    training = dataclasses.replace(config.train, log_dir=config.train.log_dir or str(output))
    objective = GeneratorObjective(model, bank, train_pairs, val_pairs, training, output)
    result = fit(objective, training, description="generator")
    objective.use_averaged_weights()
    model.eval()
    if distributed.is_main():
        save_generator(
            model,
            output,
            {
                "training": config.to_dict(),
                "best_epoch": result.best_epoch,
                "seconds": result.seconds,
            },
        )
        if val_pairs is not None and training.grid_every:
            objective.write_grid("final.png")
    return model, result
