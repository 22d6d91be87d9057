"""``AlignConfig``: one alignment run, as a YAML/JSON file or a dataclass.

::

    data:
      dataset: world              # a built-in dataset (built on first use), or
      # manifest: my/pairs.jsonl  # a manifest path (with dataset: the key of one of its manifests)
      manifest: scenes
      size: 400
      seed: 0
      dir: runs/data/world-400-s0 # default: <output>/../data/<dataset>-<size>-s<seed>
      group_by: caption           # rows with equal values are interchangeable (positives of
                                  # each other in training, all relevant in retrieval)
      exclude: {}                 # {column: [values]}: rows left out of training (held-out
                                  # classes for zero-shot)
    encoders:                     # column → frozen encoder; its modality comes from the encoder
      caption: minilm
      image: {name: effnet-lite0, image_size: 128}
      caption_audio: {name: whisper-tiny-en, pad_to_30s: false}
    cache: {dir: runs/cache/align-world-400, batch_size: 32, device: cpu, dtype: fp32}
    pairs: [[caption, image]]     # stage 1: CLIP-style, every head of these columns learns
    bind:                         # stage 2: ImageBind-style, the anchor's head stays frozen
      - {column: caption_audio, anchor: caption}
    head: {dim: 256, kind: mlp, hidden: 512, pool: attention}   # defaults for every head
    heads: {caption: {pool: mean}}                              # per-column overrides
    train: {epochs: 40, batch_size: 64, lr: 0.001, temperature: 0.07}
    output: runs/align-world

Every key is checked when the file is read: an unknown or mistyped key is a
:class:`~omnifuse.errors.ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omnifuse.align.heads import HeadConfig
from omnifuse.config import CacheSection, DataSection, read_config_file
from omnifuse.config.schema import check_keys, encoder_entries, mapping, section
from omnifuse.errors import ConfigError
from omnifuse.train.config import TrainConfig

HARD_NEGATIVES = ("none", "in-batch", "neighbours")


@dataclass
class AlignData(DataSection):
    """Where the pairs come from (see the module docstring): the shared data section plus the
    grouping column and the rows left out of training."""

    group_by: str | None = None
    exclude: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class Binding:
    """Bind ``column`` to ``anchor`` (a column aligned in stage 1) with the anchor frozen."""

    column: str
    anchor: str


@dataclass
class AlignTrain(TrainConfig):
    """The training section (:class:`~omnifuse.train.TrainConfig`, with alignment's defaults)
    plus the contrastive settings; ``bind_*`` default to their stage-1 values."""

    epochs: int = 30
    batch_size: int = 64
    weight_decay: float = 0.05
    grad_clip: float | None = None
    patience: int | None = 8
    device: str = "cpu"
    temperature: float = 0.07
    learn_temperature: bool = True
    hard_negatives: str = "none"
    hard_beta: float = 1.0
    neighbours: int = 8
    bind_epochs: int | None = None
    bind_lr: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("train.epochs must be ≥ 1 and train.batch_size ≥ 2")
        if self.lr <= 0 or self.temperature <= 0:
            raise ConfigError("train.lr and train.temperature must be positive")
        if self.hard_negatives not in HARD_NEGATIVES:
            raise ConfigError(
                f"train.hard_negatives {self.hard_negatives!r} is not one of {HARD_NEGATIVES}"
            )
        if self.neighbours < 1:
            raise ConfigError("train.neighbours must be at least 1")
        self.validate()


@dataclass
class AlignConfig:
    """A whole alignment run; ``to_dict``/``from_dict`` and YAML/JSON files round-trip it."""

    data: AlignData
    encoders: dict[str, dict[str, Any]]
    pairs: list[list[str]]
    bind: list[Binding] = field(default_factory=list)
    head: HeadConfig = field(default_factory=HeadConfig)
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: CacheSection = field(default_factory=CacheSection)
    train: AlignTrain = field(default_factory=AlignTrain)
    output: str | None = None

    def __post_init__(self) -> None:
        self.encoders = encoder_entries(self.encoders)
        if not self.pairs:
            raise ConfigError("pairs: give at least one pair of columns to align, e.g. [[a, b]]")
        for pair in self.pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ConfigError(f"pairs: {pair!r} is not a pair of two different columns")
            self._known_columns(pair, "pairs")
        stage1 = {c for pair in self.pairs for c in pair}
        for binding in self.bind:
            self._known_columns([binding.column, binding.anchor], "bind")
            if binding.anchor not in stage1:
                raise ConfigError(f"bind: anchor {binding.anchor!r} is not aligned in 'pairs'")
            if binding.column in stage1:
                raise ConfigError(f"bind: {binding.column!r} is already aligned in 'pairs'")
        self._known_columns(list(self.heads), "heads")
        for column, overrides in self.heads.items():
            check_keys(HeadConfig, overrides, f"heads.{column}.")
            self.head_config(column)
        used = stage1 | {b.column for b in self.bind}
        unused = sorted(set(self.encoders) - used)
        if unused:
            raise ConfigError(f"encoders: {unused} appear in neither 'pairs' nor 'bind'")

    def _known_columns(self, columns: Sequence[str], where: str) -> None:
        unknown = [c for c in columns if c not in self.encoders]
        if unknown:
            raise ConfigError(f"{where}: {unknown} have no entry in 'encoders'")

    @property
    def columns(self) -> list[str]:
        """Columns in training order: stage-1 columns, then bound ones."""
        ordered = [c for pair in self.pairs for c in pair] + [b.column for b in self.bind]
        return list(dict.fromkeys(ordered))

    def head_config(self, column: str) -> HeadConfig:
        """The head settings of ``column``: the defaults with its overrides applied."""
        return dataclasses.replace(self.head, **self.heads.get(column, {}))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        return data

    @classmethod
    def from_dict(cls, raw: Any) -> AlignConfig:
        data = mapping(raw, "the align config")
        check_keys(cls, data, "")
        for key in ("data", "encoders", "pairs"):
            if key not in data:
                raise ConfigError(f"missing key {key!r}")
        pairs = data["pairs"]
        if not isinstance(pairs, list) or not all(isinstance(p, list) for p in pairs):
            raise ConfigError("pairs: expected a list of [column, column] lists")
        bind = data.get("bind") or []
        if not isinstance(bind, list):
            raise ConfigError("bind: expected a list of {column, anchor} mappings")
        heads = mapping(data.get("heads"), "heads", optional=True)
        return cls(
            data=section(AlignData, data["data"], "data.", optional=False),
            encoders=encoder_entries(data["encoders"]),
            pairs=[[str(c) for c in p] for p in pairs],
            bind=[section(Binding, b, "bind[].", optional=False) for b in bind],
            head=section(HeadConfig, data.get("head"), "head."),
            heads={str(c): mapping(v, f"heads.{c}") for c, v in heads.items()},
            cache=section(CacheSection, data.get("cache"), "cache."),
            train=section(AlignTrain, data.get("train"), "train."),
            output=None if data.get("output") is None else str(data["output"]),
        )


def read_align_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> AlignConfig:
    """A recipe name or YAML/JSON path, with ``section.key=value`` overrides, checked."""
    return AlignConfig.from_dict(read_config_file(name_or_path, overrides)[1])


def write_align_config(config: AlignConfig, path: str | Path) -> None:
    """Write ``config`` as YAML (``.yaml``/``.yml``) or JSON (any other suffix)."""
    path = Path(path)
    data = config.to_dict()
    if path.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
