"""Registry of built-in dataset builders: ``omnifuse data build NAME --out DIR --seed S --size N``.

A builder writes files plus one or more manifests (with schemas) and ``dataset.json`` into ``out``
and returns the :class:`DatasetInfo`. The same seed and size give byte-identical manifests.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from omnifuse.data.schema import DatasetInfo
from omnifuse.errors import ConfigError
from omnifuse.registry import Registry

datasets: Registry[DatasetInfo] = Registry(
    "dataset",
    builtin_modules=(
        "omnifuse.data.world",
        "omnifuse.data.world.sensors",
        "omnifuse.data.av_digits",
        "omnifuse.data.fashion_mnist",
        "omnifuse.data.speech_test",
        "omnifuse.data.tables",
        "omnifuse.data.affect",
    ),
)


def build(name: str, out: Path, *, seed: int = 0, **options: Any) -> DatasetInfo:
    """Build dataset ``name`` into ``out``; ``options`` go to the builder (``size``, and its own
    such as ``noise_std``); a size left out is the builder's default."""
    factory = datasets.get(name)
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        known = sorted(set(accepted) - {"out", "seed"})
        raise ConfigError(f"dataset {name!r} has no option {', '.join(unknown)}; it takes {known}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return factory(out, seed=seed, **options)


def available() -> list[str]:
    return datasets.list()
