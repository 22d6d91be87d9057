"""Captioning through the projector route, against a retrieval baseline on the same features.

Two tasks on the built-in ``world`` data:

- **images**: scene captions (the ``world-caption`` recipe: EfficientNet-Lite0 grid tokens →
  MLP projector → soft prompt → frozen built-in LM);
- **video**: clip captions derived from the clip record (:func:`~omnifuse.projector.
  describe_clip`: both moving shapes, their directions, which one sounds), from the ``video``
  encoder's tokens (8 frames of EfficientNet features, each with the Whisper states of the
  soundtrack around it), the same recipe otherwise.

For each, on the test split: the projector's captions, generated from the raw files by
``load_captioner(folder).caption(paths)`` (timed end to end: decoding, encoders, generation),
and the **nearest-neighbour** baseline: the caption of the training item whose pooled encoder
features are closest (cosine), the classic retrieval baseline on the very features the
projector sees. Scores: BLEU-4, ROUGE-L, CIDEr-D (:mod:`omnifuse.eval.text_metrics`), and the
projector's CIDEr over the baseline's.

    python bench/caption.py                          # trains what is missing (about 10 min)
    python bench/caption.py --only image --runs runs/bench-vqa
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchkit import markdown_table
from omnifuse.data.cache import CachedFeatureDataset, FeatureCache
from omnifuse.data.manifest import load_manifest
from omnifuse.eval.text_metrics import caption_report
from omnifuse.projector import load_captioner, read_projector_config, train_projector
from omnifuse.projector.config import ProjectorConfig
from omnifuse.projector.data import cache_dir_for, prepare_manifest, target_text

VIDEO = (
    "task=video-caption",
    "data.manifest=video",
    "data.size=40",
    "data.options={video_clips: 400}",
    "data.dir=runs/data/world-40-s0-v400",
    "cache.dir=runs/cache/world-40-s0-v400",
    "encoders={video: {name: video, num_frames: 8, image_cfg: {image_size: 64}, "
    "audio_cfg: {pad_to_30s: false}}}",
    "projector.tokens={video: 8}",
    "target=clip_description",
    "lm.pretrain={epochs: 30}",
    "train.epochs=40",
)
"""Overrides of the ``world-caption`` recipe for video captions: 400 clips of 2 s (320 for
training), their frames and soundtrack through the ``video`` encoder; the LM's corpus is a fifth
of the scenes' (1,000 texts), so it pretrains for 30 epochs, and the projector trains for 40."""


@dataclass
class Row:
    task: str
    method: str
    scores: dict[str, float]
    seconds_per_item: float
    train_seconds: float


def trained(config: Path, folder: Path, overrides: Sequence[str]) -> Path:
    if not (folder / "metrics.json").is_file():
        train_projector(read_projector_config(config, [*overrides, f"output={folder}"]))
    return folder


def split_rows(manifest_path: Path, split: str) -> list[dict[str, Any]]:
    return [r for r in load_manifest(manifest_path).samples if r.get("split") == split]


def nearest_neighbour(
    config: ProjectorConfig, test: Sequence[dict[str, Any]]
) -> tuple[list[str], float]:
    """Captions of the closest training items by cosine of pooled cached features."""
    manifest_path = prepare_manifest(config)
    manifest = load_manifest(manifest_path)
    cache = FeatureCache(cache_dir_for(config, manifest_path))
    column = config.columns[0]
    train = CachedFeatureDataset(cache, manifest, [column], split="train")
    rows = {str(r["id"]): r for r in manifest.samples}
    train_keys = [keys[column] for _, keys, _ in train.rows]
    train_text = [target_text(rows[name], config.target) for name, _, _ in train.rows]
    started = time.perf_counter()
    bank = torch.nn.functional.normalize(cache.pooled(column, train_keys), dim=-1)
    queries = [cache.key_for(column, r[column]) for r in test]
    vectors = torch.nn.functional.normalize(cache.pooled(column, queries), dim=-1)
    best = (vectors @ bank.T).argmax(dim=1).tolist()
    seconds = (time.perf_counter() - started) / max(1, len(test))
    return [train_text[i] for i in best], seconds


def evaluate(task: str, config_path: Path, folder: Path, overrides: Sequence[str]) -> list[Row]:
    config = read_projector_config(config_path, [*overrides, f"output={folder}"])
    manifest_path = prepare_manifest(config)
    test = split_rows(manifest_path, "test")
    refs = [[target_text(r, config.target)] for r in test]
    captioner = load_captioner(folder)
    column = config.columns[0]
    started = time.perf_counter()
    generated = captioner.caption([r[column] for r in test])
    per_item = (time.perf_counter() - started) / max(1, len(test))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    neighbours, nn_seconds = nearest_neighbour(config, test)
    return [
        Row(
            task,
            "projector (soft prompt → frozen LM)",
            caption_report(generated, refs),
            per_item,
            float(metrics["train"]["seconds"]),
        ),
        Row(
            task,
            "nearest training caption (pooled features)",
            caption_report(neighbours, refs),
            nn_seconds,
            0.0,
        ),
    ]


def table(rows: Sequence[Row]) -> str:
    head = ["task", "method", "BLEU-4", "ROUGE-L", "CIDEr-D", "CIDEr ratio", "s/item", "train s"]
    body = []
    reference = {r.task: r.scores["cider"] for r in rows if r.method.startswith("nearest")}
    for r in rows:
        ratio = r.scores["cider"] / reference[r.task] if reference.get(r.task) else float("nan")
        cells = [
            r.task,
            r.method,
            f"{r.scores['bleu4']:.3f}",
            f"{r.scores['rouge_l']:.3f}",
            f"{r.scores['cider']:.3f}",
            f"{ratio:.2f}×",
            f"{r.seconds_per_item:.4f}",
            f"{r.train_seconds:.0f}",
        ]
        body.append(cells)
    return markdown_table(head, body, "ll" + "r" * (len(head) - 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="world-caption")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-caption"))
    parser.add_argument("--only", choices=("image", "video"), default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    rows: list[Row] = []
    tasks = {"image": (), "video": VIDEO}
    folders = {"image": "world-caption", "video": "world-video-caption"}
    for task, overrides in tasks.items():
        if args.only not in (None, task):
            continue
        folder = trained(args.config, args.runs / folders[task], overrides)
        rows += evaluate(task, args.config, folder, overrides)
    print(
        f"world captioning, test split; python {platform.python_version()}, torch "
        f"{torch.__version__}; {time.perf_counter() - started:.0f} s in all"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
