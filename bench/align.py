"""Alignment quality: world retrieval in every direction, Fashion-MNIST zero-shot and probes.

World (``--world-size`` scenes, 80/10/10 by scene): captions and images aligned CLIP-style,
spoken captions (TTS voices) bound ImageBind-style. Every recipe is trained on the same cached
features in this run and scored on the test split in every direction, against chance (relevance:
exact caption equality) and against the reference recipe — linear heads on the encoders' pooled
vectors, the plainest CLIP. ``--cascade`` adds speech → image through a transcript (Whisper
tiny.en, then the text head), the usual way to search images by voice without a speech head.

Fashion-MNIST (``--fashion-size`` photos, train/val from the training file, test from t10k):
three classes are held out of alignment training (each fold of ``--folds``); zero-shot accuracy
on the test photos of the held-out classes (3-way), of the seen ones (7-way) and of all ten,
with the text head locked (LiT) or learned. Linear probes (logistic regression, all ten classes,
trained on the train split) on EfficientNet-Lite0 features and on raw pixels put the numbers in
context; a probe on the held-out three classes alone is the supervised ceiling of the 3-way
zero-shot task.

    python bench/align.py --cascade                # world 1000, fashion 3000: 8 min, cached
    python bench/align.py --world-size 400 --fashion-size 1000 --folds 1
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnifuse.align import AlignConfig, ZeroShotClassifier
from omnifuse.align.data import SplitData, load_training_data
from omnifuse.align.evaluate import evaluate_split, retrieval_metrics, split_embeddings
from omnifuse.align.presets import FASHION_HELD_OUT, preset
from omnifuse.align.train import fit_model
from omnifuse.data.fashion_mnist import CLASS_NAMES

DIRECTIONS = ("text→image", "image→text", "audio→image", "image→audio", "audio→text")
RUNS = Path("runs")


def world_config(size: int, **changes: Any) -> AlignConfig:
    """The world recipe at ``size`` with some settings replaced (dotted keys)."""
    raw = preset("world", size=size)
    raw["data"]["dir"] = str(RUNS / "data" / f"world-{size}-s0")
    raw["cache"] = {"dir": str(RUNS / "cache" / f"align-world-{size}-s0"), "device": "auto"}
    for key, value in changes.items():
        node = raw
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return AlignConfig.from_dict(raw)


WORLD_RECIPES: dict[str, dict[str, Any]] = {
    "linear heads, pooled (reference)": {
        "head": {"dim": 256, "kind": "linear", "pool": "mean", "dropout": 0.0},
        "heads": {},
    },
    "MLP heads, attention pooling": {},
    "  + hard negatives (neighbours)": {"train.hard_negatives": "neighbours"},
    "  audio bound to image instead": {"bind": [{"column": "caption_audio", "anchor": "image"}]},
}


def train_recipe(config: AlignConfig, folder: Path) -> tuple[Any, dict[str, SplitData], float]:
    started = time.perf_counter()
    _, splits = load_training_data(config, folder)
    model, _, _ = fit_model(config, splits, folder)
    return model, splits, time.perf_counter() - started


def world_study(size: int, cascade: bool) -> None:
    print(f"\n## World retrieval ({size} scenes)\n")
    started = time.perf_counter()
    load_training_data(world_config(size), RUNS / "bench-align" / "world-prep")
    print(f"data and features ready in {time.perf_counter() - started:.0f} s")
    reports: dict[str, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    default = None
    for name, changes in WORLD_RECIPES.items():
        config = world_config(size, **changes)
        folder = RUNS / "bench-align" / f"world-{len(reports)}"
        model, splits, seconds[name] = train_recipe(config, folder)
        reports[name] = evaluate_split(model, splits["test"])
        if default is None and not changes:
            default = (model, splits["test"])
    test = next(iter(reports.values()))
    queries = test["text→image"]["queries"]
    print(f"test split: {queries} scenes; relevance = exact caption equality\n")
    print_full_table(reports["MLP heads, attention pooling"])
    print_recipe_table(reports, seconds)
    if cascade and default is not None:
        print_cascade(*default)


def print_full_table(report: dict[str, dict[str, Any]]) -> None:
    print("| direction | R@1 | R@5 | R@10 | MRR | mAP | chance R@1 | chance R@10 | R@1 / chance |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in (*DIRECTIONS, "text→audio"):
        r = report[name]
        c = r["chance"]
        print(
            f"| {name} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['R@10']:.3f} | {r['mrr']:.3f} | "
            f"{r['map']:.3f} | {c['R@1']:.3f} | {c['R@10']:.3f} | {r['R@1'] / c['R@1']:.0f}× |"
        )
    print()


def print_recipe_table(
    reports: dict[str, dict[str, dict[str, Any]]], seconds: dict[str, float]
) -> None:
    reference = next(iter(reports.values()))
    heads = " | ".join(f"{d} R@1" for d in DIRECTIONS)
    print(f"| recipe | {heads} | mean MRR | vs reference | train s |")
    print("|---|" + "---:|" * (len(DIRECTIONS) + 3))
    ref_mrr = float(np.mean([reference[d]["mrr"] for d in DIRECTIONS]))
    for name, report in reports.items():
        cells = " | ".join(f"{report[d]['R@1']:.3f}" for d in DIRECTIONS)
        mean = float(np.mean([report[d]["mrr"] for d in DIRECTIONS]))
        print(f"| {name} | {cells} | {mean:.3f} | {mean / ref_mrr:.2f}× | {seconds[name]:.0f} |")
    print()


def print_cascade(model: Any, test: SplitData) -> None:
    """Speech → image by transcript: Whisper tiny.en text through the text head."""
    from omnifuse.speech.asr import create_asr

    asr = create_asr("faster-whisper")
    started = time.perf_counter()
    transcripts = [asr.transcribe(s["caption_audio"]).text for s in test.samples]
    asr_seconds = time.perf_counter() - started
    embedded = split_embeddings(model, test)
    cascade = {"audio": model.embed("text", transcripts), "image": embedded["image"]}
    via_text = retrieval_metrics(cascade, test.group_keys, directions=[("audio", "image")])
    bound = retrieval_metrics(embedded, test.group_keys, directions=[("audio", "image")])
    print("| speech → image | R@1 | R@5 | MRR | seconds per query |")
    print("|---|---:|---:|---:|---:|")
    b, v = bound["audio→image"], via_text["audio→image"]
    print(f"| bound audio head | {b['R@1']:.3f} | {b['R@5']:.3f} | {b['mrr']:.3f} | features |")
    per_query = asr_seconds / len(transcripts)
    print(
        f"| transcript → text head | {v['R@1']:.3f} | {v['R@5']:.3f} | {v['mrr']:.3f} | "
        f"{per_query:.2f} (ASR) |"
    )
    print()


def fashion_config(size: int, held_out: Sequence[str], locked: bool) -> AlignConfig:
    raw = preset("fashion-mnist", size=size)
    raw["data"]["dir"] = str(RUNS / "data" / f"fashion-mnist-{size}-s0")
    raw["data"]["exclude"] = {"label": list(held_out)}
    raw["cache"] = {"dir": str(RUNS / "cache" / f"align-fashion-mnist-{size}-s0"), "device": "auto"}
    if not locked:
        raw["heads"]["text"] = {"kind": "mlp", "hidden": 512}
    return AlignConfig.from_dict(raw)


def prompt_name(name: str) -> str:
    return name.lower().replace("/", " or ")


def zero_shot(model: Any, test: SplitData, classes: Sequence[str]) -> float:
    """Accuracy on the test photos of ``classes``, choosing among those classes only."""
    rows = [i for i, s in enumerate(test.samples) if s["label"] in classes]
    classifier = ZeroShotClassifier(model, [prompt_name(c) for c in classes])
    images = split_embeddings(model, test, modalities=["image"])["image"][rows]
    predicted = classifier.predict_embeddings(images)
    truth = np.array([list(classes).index(test.samples[i]["label"]) for i in rows])
    return float(np.mean(predicted == truth))


def folds(count: int) -> list[tuple[str, ...]]:
    """The default held-out classes, then seeded random triples."""
    out: list[tuple[str, ...]] = [FASHION_HELD_OUT]
    rng = np.random.default_rng(0)
    while len(out) < count:
        triple = tuple(sorted(rng.choice(CLASS_NAMES, size=3, replace=False).tolist()))
        if triple not in out:
            out.append(triple)
    return out


def fashion_study(size: int, fold_count: int) -> None:
    print(f"\n## Fashion-MNIST ({size} photos)\n")
    started = time.perf_counter()
    _, every_class = load_training_data(
        fashion_config(size, (), True), RUNS / "bench-align" / "fashion-prep"
    )
    print(f"data and features ready in {time.perf_counter() - started:.0f} s")
    rows: list[tuple[str, str, float, float, float, float]] = []
    for held_out in folds(fold_count):
        seen = [c for c in CLASS_NAMES if c not in held_out]
        for locked in (True, False):
            config = fashion_config(size, held_out, locked)
            folder = RUNS / "bench-align" / f"fashion-{len(rows)}"
            model, fold_splits, seconds = train_recipe(config, folder)
            test = fold_splits["test"]
            rows.append(
                (
                    ", ".join(held_out),
                    "locked (LiT)" if locked else "learned",
                    zero_shot(model, test, held_out),
                    zero_shot(model, test, seen),
                    zero_shot(model, test, CLASS_NAMES),
                    seconds,
                )
            )
    print("| held-out classes | text head | held-out 3-way | seen 7-way | all 10-way | train s |")
    print("|---|---|---:|---:|---:|---:|")
    for held, head, unseen, seen_acc, every, seconds in rows:
        print(f"| {held} | {head} | {unseen:.3f} | {seen_acc:.3f} | {every:.3f} | {seconds:.0f} |")
    print("| chance | | 0.333 | 0.143 | 0.100 | |\n")
    print_probes(every_class["train"], every_class["test"], folds(fold_count))


def probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


def pixels(split: SplitData) -> np.ndarray:
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.open(s["image"]).convert("L"), np.float32).ravel() / 255.0
            for s in split.samples
        ]
    )


def print_probes(train: SplitData, test: SplitData, held_outs: Sequence[Sequence[str]]) -> None:
    """Logistic-regression probes, all ten classes and each held-out triple alone."""
    features = {
        "EfficientNet-Lite0 pooled (1280-d)": (
            train.features["image"].pooled.numpy(),
            test.features["image"].pooled.numpy(),
        ),
        "raw pixels (784-d)": (pixels(train), pixels(test)),
    }
    train_y = np.array([s["label"] for s in train.samples])
    test_y = np.array([s["label"] for s in test.samples])
    triples = " | ".join(f"{', '.join(h)} (3-way)" for h in held_outs)
    print(f"| linear probe on | all 10 classes | {triples} | seconds |")
    print("|---|---:|" + "---:|" * (len(held_outs) + 1))
    for name, (train_x, test_x) in features.items():
        started = time.perf_counter()
        cells = [f"{probe_accuracy(train_x, train_y, test_x, test_y):.3f}"]
        for held in held_outs:
            tr, te = np.isin(train_y, held), np.isin(test_y, held)
            accuracy = probe_accuracy(train_x[tr], train_y[tr], test_x[te], test_y[te])
            cells.append(f"{accuracy:.3f}")
        print(f"| {name} | {' | '.join(cells)} | {time.perf_counter() - started:.0f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world-size", type=int, default=1000)
    parser.add_argument("--fashion-size", type=int, default=3000)
    parser.add_argument("--folds", type=int, default=3, help="held-out class triples")
    parser.add_argument("--cascade", action="store_true", help="speech → image via ASR too")
    parser.add_argument("--skip-world", action="store_true")
    parser.add_argument("--skip-fashion", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMNIFUSE_PROGRESS", "0")
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    started = time.perf_counter()
    if not args.skip_world:
        world_study(args.world_size, args.cascade)
    if not args.skip_fashion:
        fashion_study(args.fashion_size, args.folds)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
