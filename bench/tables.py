"""Tables on real data: omnifuse's tabular encoder + head against scikit-learn's gradient boosting.

For each of scikit-learn's bundled tables (breast cancer, wine) and each seed (a different
stratified 60/20/20 split of the same rows), in the same process and on the same split:

- **omnifuse**: ``omnifuse train --config tables`` (one token per field, statistics fitted on the
  training split, MLP head; the val split picks the epoch);
- **GBM**: ``sklearn.ensemble.GradientBoostingClassifier`` with its defaults, fitted on the
  training split (and, as a stronger reference, on train + val, since it selects nothing on val).

Test accuracy per seed, then the mean and its difference. About 4 minutes on 2 cores:

    python bench/tables.py
    python bench/tables.py --seeds 0 1 --datasets wine      # a quick look
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

from benchkit import markdown_table
from omnifuse.data.manifest import load_manifest
from omnifuse.train.recipe import read_run_config, run


def split_arrays(manifest_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The manifest's splits as float arrays (every table here is numeric, nothing missing)."""
    manifest = load_manifest(manifest_path)
    fields = manifest.schema.table_columns("record")
    arrays = {}
    for split in ("train", "val", "test"):
        rows = manifest.split(split)
        x = np.array([[float(r["record"][f]) for f in fields] for r in rows])
        y = np.array([r["label"] for r in rows])
        arrays[split] = (x, y)
    return arrays


def gbm_accuracy(
    arrays: dict[str, tuple[np.ndarray, np.ndarray]], with_val: bool, seed: int
) -> float:
    x, y = arrays["train"]
    if with_val:
        x, y = np.concatenate([x, arrays["val"][0]]), np.concatenate([y, arrays["val"][1]])
    model = GradientBoostingClassifier(random_state=seed).fit(x, y)
    test_x, test_y = arrays["test"]
    return float((model.predict(test_x) == test_y).mean())


def one_split(dataset: str, seed: int, root: Path) -> dict[str, float]:
    config = read_run_config(
        "tables",
        [
            f"data.dataset={dataset}",
            f"data.seed={seed}",
            f"data.dir={root / f'{dataset}-s{seed}'}",
            f"train.seed={seed}",
            f"output={root / f'{dataset}-s{seed}-model'}",
        ],
    )
    started = time.perf_counter()
    outcome = run(config)
    seconds = time.perf_counter() - started
    arrays = split_arrays(root / f"{dataset}-s{seed}" / "manifest.csv")
    return {
        "omnifuse": float(outcome.metrics["test"]["accuracy"]),
        "gbm": gbm_accuracy(arrays, False, seed),
        "gbm_train_val": gbm_accuracy(arrays, True, seed),
        "seconds": seconds,
        "test_rows": float(len(arrays["test"][1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["breast-cancer", "wine"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tables-") as tmp:
        for dataset in args.datasets:
            results = [one_split(dataset, seed, Path(tmp)) for seed in args.seeds]
            for seed, r in zip(args.seeds, results, strict=True):
                print(
                    f"{dataset} seed {seed}: omnifuse {r['omnifuse']:.3f}  GBM {r['gbm']:.3f}  "
                    f"GBM(train+val) {r['gbm_train_val']:.3f}  ({int(r['test_rows'])} test rows, "
                    f"{r['seconds']:.0f} s)",
                    flush=True,
                )
            mean = {k: float(np.mean([r[k] for r in results])) for k in results[0]}
            rows.append(
                [
                    dataset,
                    str(len(results)),
                    f"{mean['omnifuse']:.3f}",
                    f"{mean['gbm']:.3f}",
                    f"{mean['gbm_train_val']:.3f}",
                    f"{100 * (mean['omnifuse'] - mean['gbm']):+.1f}",
                    f"{mean['seconds']:.0f}",
                ]
            )
    head = ["table", "splits", "omnifuse", "GBM", "GBM train+val", "Δ vs GBM (pts)", "s / run"]
    print(markdown_table(head, rows, "lrrrrrr"))


if __name__ == "__main__":
    main()
