"""Cross-modal consistency on world: does an aligned model tell a scene's caption (written or
spoken) from the same caption with one colour, shape, count or relation changed?

The calibration (Platt scaling and a Youden threshold per modality pair) is fitted on the
validation split of the model's world build (``omnifuse consistency calibrate``) and scored
here on the test split: AUROC of true pairs against one-attribute edits (all, and per kind)
and against other scenes' captions, expected calibration error of the probability (positives
and each scene's negatives weighted equally), balanced accuracy at the threshold. Edited
captions are spoken in the voice of the scene's own recording. The ``premise`` row is the
text–image calibration the assistant's premise check uses: each object of the scene stated
alone ("a red circle"), true, or with its colour or shape changed to one the scene lacks. When
the model folder holds a matcher (``omnifuse consistency match``), text–image pairs are scored
by its logits and speech–image pairs by its logits for the recording's transcript.

    python bench/consistency.py --align runs/align-world-consistency
    python bench/consistency.py --align runs/align-world --calibrate   # refit on val first
    python bench/consistency.py --align runs/align-world-consistency --relation-study train
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse.align import load_aligned
from omnifuse.align.consistency import calibrate, read_calibration, score_split
from omnifuse.align.consistency.calibrate import training_manifest
from omnifuse.align.consistency.checker import NotCalibratedError
from omnifuse.align.consistency.matcher import has_matcher, load_matcher
from omnifuse.data.manifest import load_manifest
from omnifuse.data.world.edits import dataset_seed, edit_scene, row_plan
from omnifuse.data.world.language import write_caption
from omnifuse.data.world.render import render_scene

TARGETS = {"image–text": 0.95, "audio–image": 0.90}
KINDS = ("colour", "shape", "count", "relation")


def relation_study(model: Any, manifest: Path, split: str, limit: int | None) -> None:
    """Where a reversed relation is lost: for the relation captions of ``split``, the cosine
    between a caption and its reversed copy (text head), between the image and the image with
    the related objects swapped (image head), and how often each image prefers its caption."""
    rows = load_manifest(manifest).split(split)[:limit]
    world_seed = dataset_seed(manifest.parent)
    size = int(json.loads((manifest.parent / "dataset.json").read_text())["params"]["image_size"])
    texts, flipped, images, swapped = [], [], [], []
    for row in rows:
        scene, plan = row_plan(row, world_seed)
        edited = edit_scene(scene, plan, "relation", np.random.default_rng(0))
        if edited is not None:
            texts.append(row["caption"])
            flipped.append(write_caption(*edited))
            images.append(row["image"])
            swapped.append(render_scene(edited[0], size, np.random.default_rng(1)))
    t1, t2 = model.embed("text", texts), model.embed("text", flipped)
    i1, i2 = model.embed("image", images), model.embed("image", swapped)
    dot = lambda a, b: (a * b).sum(axis=1)  # noqa: E731
    print(
        f"relation captions of {split} ({len(texts)}): caption vs reversed caption cosine "
        f"{dot(t1, t2).mean():.3f}; image vs swapped image {dot(i1, i2).mean():.3f}; the image "
        f"prefers its caption {np.mean(dot(i1, t1) > dot(i1, t2)):.1%}, the swapped image the "
        f"reversed one {np.mean(dot(i2, t2) > dot(i2, t1)):.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--align", type=Path, required=True, help="aligned model folder")
    parser.add_argument("--calibrate", action="store_true", help="refit the calibration on val")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N scenes of each split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--relation-study", metavar="SPLIT", help="also where reversed relations are lost"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = load_aligned(args.align)
    manifest = training_manifest(args.align)
    try:
        calibration = read_calibration(args.align)
        if args.calibrate:
            raise NotCalibratedError("refit requested")
    except NotCalibratedError:
        calibration = calibrate(args.align, model=model, limit=args.limit)
    matcher = load_matcher(args.align) if has_matcher(args.align) else None
    scores = score_split(
        model, calibration, manifest, args.split, limit=args.limit, matcher=matcher
    )
    scorers = {f"{p.a}–{p.b}": p.scorer for p in calibration.pairs.values()}
    print(f"# scored by: {scorers}")
    print(f"# {args.align} on {manifest} ({args.split}); calibrated on {calibration.source}")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {args.threads}, {time.perf_counter() - started:.0f} s\n"
    )
    header = [
        "pair",
        "pairs",
        "AUROC swaps",
        *[f"AUROC {k}" for k in KINDS],
        "AUROC other",
        "ECE",
        "bal. acc.",
        "threshold p",
        "val AUROC swaps",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, figures in scores.items():
        pair = calibration.premise if name == "premise" else calibration.pair(*name.split("–"))
        assert pair is not None
        per = figures["per_swap"]
        cells = [
            name,
            str(figures["pairs"]),
            f"{figures['auroc_swaps']:.3f}",
            *[f"{per[k]:.3f}" if k in per else "–" for k in KINDS],
            "–" if figures["auroc_other"] is None else f"{figures['auroc_other']:.3f}",
            f"{figures['ece']:.3f}",
            f"{figures['balanced_accuracy']:.3f}",
            f"{pair.threshold:.3f}",
            f"{pair.val.get('auroc_swaps', float('nan')):.3f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    if "premise" in scores:
        premise = scores["premise"]
        print(
            f"premise check at its threshold: {premise['true_kept']:.1%} of true statements "
            f"kept, {premise['false_refused']:.1%} of false ones refused"
        )
    if args.relation_study:
        relation_study(model, manifest, args.relation_study, args.limit)
    for name, target in TARGETS.items():
        if name in scores:
            value = scores[name]["auroc_swaps"]
            print(
                f"{name}: AUROC against one-attribute swaps {value:.3f} "
                f"(target ≥ {target:.2f}: {'met' if value >= target else 'NOT met'})"
            )


if __name__ == "__main__":
    main()
