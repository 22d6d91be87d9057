"""Scoring a text-to-image generator with omnifuse's own models (nothing downloaded).

On the first ``--prompts`` test captions of the generator's data (a world build), one image per
caption is sampled for every ``--steps`` × ``--guidance`` × ``--sampler`` setting (Euler or Heun
steps, classifier-free guidance; ``--batch`` captions per call, each call seeded with its first
caption's position, so ``--batch 1`` samples and times one image at a time with seed =
position), timed, and scored three ways; one table row per setting, and a last row of the same
scores of the real test renders:

- **prompt retrieval**: an aligner trained here on the same data's train split (MiniLM captions
  ↔ EfficientNet-Lite0 images, CLIP-style, the world-align recipe with the changes in
  ``ALIGNER_OVERRIDES``), or ``--aligner`` an aligned world model, embeds each
  generated image and the 100 captions; R@1 is how often the image's own caption ranks first
  (chance 1/100);
- **attribute accuracy**: a reader trained here on the real train renders (a small CNN, multi-label
  over every colour–shape pair) says which colour–shape pairs each image holds; accuracy is the
  share of the caption's objects it finds (probability > 0.5);
- **FID / KID** (torchmetrics) between generated and real test images on the reader's image
  features (its CNN's pooled 128-d vector), with real-vs-real (train renders vs test renders) as
  the floor.

    python bench/generate.py --model runs/generate-world --data runs/data/world-gen-4000-s0 \
        --guidance 3 5 7 --steps 30
    python bench/generate.py --guidance 7 --steps 15 30 --sampler euler heun
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from omnifuse.align import load_aligned
from omnifuse.data.manifest import load_manifest
from omnifuse.data.schema import ManifestSchema, write_manifest
from omnifuse.generate import SAMPLERS, Sampler, TextToImage, load_generator
from omnifuse.models import FusionModel, load_model


def objects_of(row: dict[str, Any]) -> list[str]:
    return [f"{o['colour']} {o['shape']}" for o in row["scene"]["objects"]]


def train_reader(data: Path, work: Path) -> FusionModel:
    """A multi-label colour–shape reader on the real train renders (reused when present)."""
    folder = work / "reader"
    if not (folder / "model.safetensors").is_file():
        from omnifuse.train.recipe import RunConfig, run

        rows = [
            {
                "id": r["id"],
                "split": r["split"],
                "image": str(Path(r["image"]).resolve()),
                "objects": objects_of(r),
            }
            for r in load_manifest(data / "scenes.jsonl").samples
        ]
        manifest = work / "attributes.jsonl"
        write_manifest(
            manifest, rows, ManifestSchema(modalities={"image": "image"}, labels=["objects"])
        )
        config = RunConfig.from_dict(
            {
                "data": {"manifest": str(manifest), "target": "objects"},
                "encoders": {"image": {"name": "cnn-image", "image_size": 32, "dim": 128}},
                "model": {"task": "multilabel", "fusion": "concat", "fusion_cfg": {"dim": 128}},
                "train": {"epochs": 25, "batch_size": 64, "lr": 0.002, "seed": 0},
                "output": str(folder),
            }
        )
        run(config)
    return load_model(folder)


ALIGNER_OVERRIDES = [
    "encoders={caption: minilm, image: {name: effnet-lite0, image_size: 128, center_crop: false}}",
    "bind=[]",
    "heads={image: {queries: 16}}",
]
"""The world-align recipe without speech, seeing each small render whole (no centre crop: at 32 px
the crop cuts 3 pixels off every edge, and objects there) and pooling the image with 16 attention
queries, one per cell of EfficientNet's 4×4 grid, as the world-consistency recipe does."""


def train_aligner(data: Path, work: Path) -> Any:
    """A caption ↔ image aligner on the same data's train split (reused when present)."""
    folder = work / "aligner"
    if not (folder / "model.safetensors").is_file():
        from omnifuse.align import read_align_config, train_alignment

        info = json.loads((data / "dataset.json").read_text())
        config = read_align_config(
            "world-align",
            [
                f"data.dir={data}",
                f"data.size={info['size']}",
                *ALIGNER_OVERRIDES,
                f"cache.dir={work / 'aligner-cache'}",
                f"output={folder}",
            ],
        )
        train_alignment(config)
    return load_aligned(folder)


class ReaderFeatures(nn.Module):
    """uint8 (N, 3, H, W) images → the reader's pooled image features, for torchmetrics."""

    def __init__(self, reader: FusionModel, size: int) -> None:
        super().__init__()
        self.encoder = reader.encoder("image").eval()
        self.size = size
        self.num_features = self.encoder.dim

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pictures = [
            Image.fromarray(i.permute(1, 2, 0).cpu().numpy()).resize((self.size, self.size))
            for i in images
        ]
        return self.encoder.encode(pictures).pooled.double()


def attribute_accuracy(
    reader: FusionModel, images: list[Image.Image], wanted: list[list[str]]
) -> float:
    probabilities = torch.sigmoid(reader.predict_raw([{"image": i} for i in images]).logits)
    classes = list(reader.config.classes)
    found = [
        float(probabilities[n, classes.index(o)] > 0.5)
        for n, objects in enumerate(wanted)
        for o in objects
        if o in classes
    ]
    return float(np.mean(found))


def recall_at_1(aligner: Any, images: list[Image.Image], captions: list[str]) -> float:
    image_vectors = aligner.embed("image", images)
    text_vectors = aligner.embed("text", captions)
    scores = image_vectors @ text_vectors.T
    return float(np.mean(scores.argmax(axis=1) == np.arange(len(captions))))


def distances(
    features: ReaderFeatures, real: list[Image.Image], other: list[Image.Image]
) -> tuple[float, float]:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    def batch(images: list[Image.Image]) -> torch.Tensor:
        return torch.stack(
            [torch.from_numpy(np.asarray(i.convert("RGB"))).permute(2, 0, 1) for i in images]
        )

    fid = FrechetInceptionDistance(feature=features)
    kid = KernelInceptionDistance(feature=features, subset_size=min(50, len(real)))
    for metric in (fid, kid):
        metric.update(batch(real), real=True)
        metric.update(batch(other), real=False)
    return float(fid.compute()), float(kid.compute()[0])


def sample_images(
    generator: TextToImage,
    captions: list[str],
    *,
    steps: int,
    guidance: float,
    batch: int,
    sampler: Sampler = "euler",
    draw: int = 0,
) -> tuple[list[Image.Image], float]:
    """One image per caption, ``batch`` captions per call, and the seconds it took.

    The call for the captions from position ``p`` on is seeded with ``p`` (plus ``draw`` times
    the caption count, so each draw is new noise), so ``batch=1`` gives every image the seed of
    its own position and any batch size is repeatable; the same caption gets other noise under
    another batch size (the noise is drawn for the batch at once)."""
    started = time.perf_counter()
    images: list[Image.Image] = []
    for first in range(0, len(captions), batch):
        chunk = captions[first : first + batch]
        seed = draw * len(captions) + first
        images += generator.generate(
            chunk, steps=steps, guidance=guidance, seed=seed, sampler=sampler
        )
    return images, time.perf_counter() - started


def save_grid(images: list[Image.Image], path: Path) -> None:
    """The first 100 images, 10 to a row, at 32 px, upscaled 2× for viewing."""
    grid = Image.new("RGB", (32 * 10, 32 * 10), "white")
    for n, picture in enumerate(images[:100]):
        grid.paste(picture.resize((32, 32)), (32 * (n % 10), 32 * (n // 10)))
    grid.resize((640, 640), Image.Resampling.NEAREST).save(path)


def spread(scores: list[float]) -> str:
    """The mean of the draws' scores, and their range when there are several."""
    mean = f"{np.mean(scores):.3f}"
    return mean if len(scores) == 1 else f"{mean} ({min(scores):.2f}–{max(scores):.2f})"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/generate-world"))
    parser.add_argument("--data", type=Path, default=Path("runs/data/world-gen-4000-s0"))
    parser.add_argument("--work", type=Path, default=Path("runs/generate-eval"))
    parser.add_argument(
        "--aligner",
        type=Path,
        default=None,
        help="An aligned world model to use instead of training one.",
    )
    parser.add_argument("--prompts", type=positive_int, default=100)
    parser.add_argument(
        "--split",
        default="test",
        help="Whose captions to prompt with (train: how much of the gap is generalisation).",
    )
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[30])
    parser.add_argument("--guidance", type=float, nargs="+", default=[3.0])
    parser.add_argument("--sampler", nargs="+", choices=SAMPLERS, default=["euler"])
    parser.add_argument(
        "--batch", type=positive_int, default=20, help="Prompts per call (1: one at a time)."
    )
    parser.add_argument(
        "--draws",
        type=positive_int,
        default=1,
        help="Images per caption, each from new noise: R@1 and attribute accuracy are their "
        "mean (the range of the draws' own scores beside it), FID / KID pool them.",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(args.data / "scenes.jsonl")
    test = manifest.split(args.split)[: args.prompts]
    train = manifest.split("train")[: args.prompts]
    captions = [r["caption"] for r in test]
    wanted = [objects_of(r) for r in test]
    reader = train_reader(args.data, args.work)
    aligner = load_aligned(args.aligner) if args.aligner else train_aligner(args.data, args.work)
    generator = load_generator(args.model)
    generator.generate(captions[:1], steps=1, guidance=1.0)  # builds the text encoder, untimed
    size = generator.config.unet.image_size
    real = [Image.open(r["image"]).convert("RGB").resize((size, size)) for r in test]
    real_train = [Image.open(r["image"]).convert("RGB").resize((size, size)) for r in train]
    features = ReaderFeatures(reader, 32)
    print(
        f"{len(captions)} {args.split} prompts, {args.batch} per sampling call, "
        f"{args.draws} image(s) per prompt"
    )
    print(
        "| sampler | steps | UNet calls | guidance | R@1 (100 captions) | attribute accuracy "
        "| FID | KID | images/s | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    settings = [(s, g, m) for s in args.steps for g in args.guidance for m in args.sampler]
    for steps, guidance, sampler in settings:
        generated: list[Image.Image] = []
        recalls, accuracies, seconds = [], [], 0.0
        for draw in range(args.draws):
            images, took = sample_images(
                generator,
                captions,
                steps=steps,
                guidance=guidance,
                batch=args.batch,
                sampler=sampler,
                draw=draw,
            )
            generated += images
            seconds += took
            recalls.append(recall_at_1(aligner, images, captions))
            accuracies.append(attribute_accuracy(reader, images, wanted))
        load = os.getloadavg()[0]
        save_grid(generated, args.work / f"generated-{sampler}-s{steps}-g{guidance:g}.png")
        fid, kid = distances(features, real, generated)
        calls = steps if sampler == "euler" else 2 * steps - 1
        print(
            f"| {sampler} | {steps} | {calls} | {guidance:g} "
            f"| {spread(recalls)} | {spread(accuracies)} | {fid:.2f} | {kid:.3f} "
            f"| {len(generated) / seconds:.2f} | {load:.1f} |",
            flush=True,
        )
    floor_fid, floor_kid = distances(features, real, real_train)
    print(
        f"| real test renders | | | | {recall_at_1(aligner, real, captions):.3f} "
        f"| {attribute_accuracy(reader, real, wanted):.3f} | {floor_fid:.2f} | {floor_kid:.3f} "
        "| | |"
    )
    print("(real renders' FID / KID: train renders against test renders, the floor; load: the")
    print(" one-minute load average when the setting's sampling ended — other jobs share the CPUs)")
    print(f"grids: {args.work}/generated-<sampler>-s<steps>-g<guidance>.png")


if __name__ == "__main__":
    main()
