"""Built-in alignment recipes for the built-in datasets (``omnifuse align --data NAME``): the
packaged recipe files ``world-align`` and ``fashion-align`` at a chosen size and seed, with
their folders left to follow the output folder."""

from __future__ import annotations

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
