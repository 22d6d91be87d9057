"""Built-in alignment recipes for the built-in datasets (``omnifuse align --data NAME``): the
packaged recipe files ``world-align`` and ``fashion-align`` at a chosen size and seed, with
their folders left to follow the output folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omnifuse.config import read_config_file
from omnifuse.errors import ConfigError

FASHION_HELD_OUT = ("Sandal", "Shirt", "Bag")
PRESETS = {"world": "world-align", "fashion-mnist": "fashion-align"}


def preset(name: str, *, size: int, seed: int = 0) -> dict[str, Any]:
    """The recipe for built-in dataset ``name`` as a config mapping."""
    if name not in PRESETS:
        known = sorted(PRESETS)
        raise ConfigError(f"no alignment recipe for {name!r}; use one of {known}")
    overrides = [f"data.size={size}", f"data.seed={seed}", f"train.seed={seed}"]
    overrides += ["data.dir=null", "cache.dir=null", "output=null"]
    return read_config_file(PRESETS[name], overrides)[1]


def manifest_recipe(
    manifest: Path,
    *,
    encoders: Mapping[str, Mapping[str, Any]],
    seed: int = 0,
    group_by: str | None = None,
) -> dict[str, Any]:
    """An alignment of a user's manifest: the first two ``encoders`` columns aligned (both
    heads learn), every further column bound to the first; the world recipe's heads and
    training settings."""
    if not manifest.is_file():
        raise ConfigError(
            f"--data {manifest}: neither a built-in recipe {sorted(PRESETS)} nor a file"
        )
    columns = list(encoders)
    if len(columns) < 2:
        raise ConfigError("--encoder: name at least two columns to align (COLUMN=ENCODER)")
    recipe = read_config_file(PRESETS["world"], [f"train.seed={seed}"])[1]
    return {
        "data": {"manifest": str(manifest), "group_by": group_by},
        "encoders": {c: dict(spec) for c, spec in encoders.items()},
        "pairs": [columns[:2]],
        "bind": [{"column": c, "anchor": columns[0]} for c in columns[2:]],
        "head": recipe["head"],
        "train": recipe["train"],
    }
