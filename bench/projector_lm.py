"""The projector route into a real pretrained LM: frozen Gemma-3-270M against the built-in decoder.

Both routes turn the same frozen encoders' tokens (EfficientNet-Lite0 grid cells; for VQA also
the spoken question's Whisper states) into a soft prompt through the same MLP projector; they
differ only in the frozen LM behind it: Gemma-3-270M (the packaged GGUF converted to a Hugging
Face folder, bfloat16; recipes ``world-caption-gemma`` and ``world-vqa-gemma``, training capped
at 45 minutes of wall clock) or the built-in word-level decoder pretrained on the training
split's text (``world-caption``, ``world-vqa-gen``). On the test split of the same world data:

- captions: BLEU-4, ROUGE-L, CIDEr-D with the nearest training caption (cosine of pooled
  features) as the reference, exactly as ``bench/caption.py`` scores them;
- spoken-question VQA: accuracy overall and per question type, as ``bench/vqa_routes.py``
  scores it (VQA normalisation, first answer word).

Both from the raw files (s/item: decoding, encoders, generation). s/step: the training's wall
seconds per optimizer step (batch 32), the per-epoch validation pass included, from the model
folder's ``metrics.jsonl``; steps and minutes: how far the training got.

    python bench/projector_lm.py        # trains what is missing (Gemma: 45 min per recipe)
    python bench/projector_lm.py --gemma runs/bench-gemma --builtin runs/bench-vqa
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchkit import markdown_table
from caption import Row
from caption import evaluate as caption_rows
from omnifuse.config import recipes_dir
from omnifuse.data.manifest import load_manifest
from omnifuse.data.world.language import QTYPES
from vqa_routes import Route, accuracy, projector_route, trained_projector


def recipe(name: str) -> Path:
    """The packaged recipe file ``name``."""
    return recipes_dir() / f"{name}.yaml"


def training_pace(folder: Path) -> dict[str, float]:
    """Steps, epochs, minutes and seconds per optimizer step of the folder's training."""
    lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    steps = int(records[-1]["step"])
    seconds = sum(float(r["seconds"]) for r in records)
    return {
        "steps": steps,
        "epochs": len(records),
        "minutes": seconds / 60,
        "s_per_step": seconds / max(1, steps),
    }


def pace_cells(folder: Path) -> list[str]:
    pace = training_pace(folder)
    return [
        f"{pace['s_per_step']:.2f}",
        f"{pace['steps']:.0f} ({pace['epochs']:.0f} ep.)",
        f"{pace['minutes']:.1f}",
    ]


def caption_table(rows: Sequence[tuple[Row, Path | None]]) -> str:
    head = ["method", "BLEU-4", "ROUGE-L", "CIDEr-D", "CIDEr ratio", "s/item"]
    head += ["s/step", "steps", "train min"]
    reference = next(r.scores["cider"] for r, _ in rows if r.method.startswith("nearest"))
    body = []
    for row, folder in rows:
        cells = [
            row.method,
            f"{row.scores['bleu4']:.3f}",
            f"{row.scores['rouge_l']:.3f}",
            f"{row.scores['cider']:.3f}",
            f"{row.scores['cider'] / reference:.2f}×",
            f"{row.seconds_per_item:.4f}",
        ]
        body.append(cells + (pace_cells(folder) if folder else ["—", "—", "—"]))
    return markdown_table(head, body, "l" + "r" * (len(head) - 1))


def vqa_table(routes: Sequence[tuple[Route, Path]], rows: Sequence[dict[str, Any]]) -> str:
    head = ["route", "questions", "accuracy", *QTYPES, "s/question", "s/step", "steps"]
    head += ["train min"]
    body = []
    for route, folder in routes:
        by_type = [accuracy(route, [r for r in rows if r["qtype"] == q]) for q in QTYPES]
        cells = [route.name, str(len(rows)), f"{accuracy(route, rows):.3f}"]
        cells += [f"{v:.3f}" for v in by_type]
        body.append([*cells, f"{route.seconds_per_question:.3f}", *pace_cells(folder)])
    return markdown_table(head, body, "l" + "r" * (len(head) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("runs/data/world-800-s0-vc1"))
    parser.add_argument("--cache", type=Path, default=Path("runs/cache/world-800-s0-vc1"))
    parser.add_argument("--gemma", type=Path, default=Path("runs/bench-gemma"))
    parser.add_argument("--builtin", type=Path, default=Path("runs/bench-vqa"))
    parser.add_argument("--only", choices=("caption", "vqa"), default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (a shared 2-core CPU: 1)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = [f"data.dir={args.data_dir}", f"cache.dir={args.cache}"]
    started = time.perf_counter()
    builtin_captioner = trained_projector(
        recipe("world-caption"), args.builtin / "world-caption", data, False
    )
    print(
        f"world, test split; python {platform.python_version()}, torch {torch.__version__}, "
        f"{args.threads} thread(s)"
    )
    if args.only in (None, "caption"):
        gemma = trained_projector(
            recipe("world-caption-gemma"), args.gemma / "world-caption", data, False
        )
        gemma_rows = caption_rows("image", recipe("world-caption-gemma"), gemma, data)
        builtin_rows = caption_rows("image", recipe("world-caption"), builtin_captioner, data)
        rows: list[tuple[Row, Path | None]] = [
            (dataclasses.replace(gemma_rows[0], method="projector → Gemma-3-270M"), gemma),
            (dataclasses.replace(builtin_rows[0], method="projector → built-in LM"),
             builtin_captioner),
            (gemma_rows[1], None),
        ]  # fmt: skip
        print("\nCaptions (80 test images)\n" + caption_table(rows))
    if args.only in (None, "vqa"):
        gemma = trained_projector(
            recipe("world-vqa-gemma"), args.gemma / "world-vqa-gen", data, False
        )
        builtin = trained_projector(
            recipe("world-vqa-gen"),
            args.builtin / "world-vqa-gen",
            [*data, f"lm.path={builtin_captioner / 'lm'}"],
            False,
        )
        manifest = load_manifest(args.data_dir / "vqa.jsonl")
        test = [r for r in manifest.samples if r["split"] == "test"]
        routes = [
            (dataclasses.replace(projector_route(gemma, test), name="projector → Gemma-3-270M"),
             gemma),
            (dataclasses.replace(projector_route(builtin, test), name="projector → built-in LM"),
             builtin),
        ]  # fmt: skip
        print("\nSpoken-question VQA\n" + vqa_table(routes, test))
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
