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

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omnifuse.align.heads import HEAD_KINDS, POOLS
from omnifuse.errors import ConfigError

HARD_NEGATIVES = ("none", "in-batch", "neighbours")


@dataclass
class AlignData:
    """Where the pairs come from (see the module docstring)."""

    dataset: str | None = None
    manifest: str | None = None
    size: int = 100
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    dir: str | None = None
    group_by: str | None = None
    exclude: dict[str, list[Any]] = field(default_factory=dict)
    splits: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "val": "val", "test": "test"}
    )

    def __post_init__(self) -> None:
        if not self.dataset and not self.manifest:
            raise ConfigError("data: give 'dataset' (a built-in dataset) or 'manifest' (a path)")
        if self.size < 1:
            raise ConfigError(f"data.size must be at least 1, got {self.size}")
        unknown = sorted(set(self.splits) - {"train", "val", "test"})
        if unknown or "train" not in self.splits:
            raise ConfigError("data.splits maps train (required), val and test to split values")


@dataclass
class AlignCache:
    """The feature cache the frozen encoders write once (``dir`` default: beside ``output``)."""

    dir: str | None = None
    batch_size: int = 32
    device: str = "cpu"
    dtype: str = "fp32"
    seed: int = 0


@dataclass
class HeadConfig:
    """Projection-head settings (see :mod:`omnifuse.align.heads`)."""

    dim: int = 256
    kind: str = "mlp"
    hidden: int = 512
    pool: str = "mean"
    queries: int = 4
    max_tokens: int = 512
    stride: int = 1
    dropout: float = 0.1
    locked: bool = False

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"head.kind {self.kind!r} is not one of {HEAD_KINDS}")
        if self.pool not in POOLS:
            raise ConfigError(f"head.pool {self.pool!r} is not one of {POOLS}")


@dataclass
class Binding:
    """Bind ``column`` to ``anchor`` (a column aligned in stage 1) with the anchor frozen."""

    column: str
    anchor: str


@dataclass
class AlignTrain:
    """Optimisation settings; ``bind_*`` default to their stage-1 values."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    patience: int = 8
    seed: int = 0
    temperature: float = 0.07
    learn_temperature: bool = True
    hard_negatives: str = "none"
    hard_beta: float = 1.0
    neighbours: int = 8
    bind_epochs: int | None = None
    bind_lr: float | None = None
    device: str = "cpu"

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


@dataclass
class AlignConfig:
    """A whole alignment run; ``to_dict``/``from_dict`` and YAML/JSON files round-trip it."""

    data: AlignData
    encoders: dict[str, dict[str, Any]]
    pairs: list[list[str]]
    bind: list[Binding] = field(default_factory=list)
    head: HeadConfig = field(default_factory=HeadConfig)
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: AlignCache = field(default_factory=AlignCache)
    train: AlignTrain = field(default_factory=AlignTrain)
    output: str | None = None

    def __post_init__(self) -> None:
        self.encoders = {c: _encoder_entry(c, s) for c, s in self.encoders.items()}
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
            _check_keys(HeadConfig, overrides, f"heads.{column}.")
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
        data = _mapping(raw, "the align config")
        _check_keys(cls, data, "")
        for key in ("data", "encoders", "pairs"):
            if key not in data:
                raise ConfigError(f"missing key {key!r}")
        encoders = _mapping(data["encoders"], "encoders")
        pairs = data["pairs"]
        if not isinstance(pairs, list) or not all(isinstance(p, list) for p in pairs):
            raise ConfigError("pairs: expected a list of [column, column] lists")
        bind = data.get("bind") or []
        if not isinstance(bind, list):
            raise ConfigError("bind: expected a list of {column, anchor} mappings")
        heads = _mapping(data.get("heads") or {}, "heads")
        return cls(
            data=_section(AlignData, data["data"], "data."),
            encoders=dict(encoders),
            pairs=[[str(c) for c in p] for p in pairs],
            bind=[_section(Binding, b, "bind[].") for b in bind],
            head=_section(HeadConfig, data.get("head") or {}, "head."),
            heads={str(c): _mapping(v, f"heads.{c}") for c, v in heads.items()},
            cache=_section(AlignCache, data.get("cache") or {}, "cache."),
            train=_section(AlignTrain, data.get("train") or {}, "train."),
            output=None if data.get("output") is None else str(data["output"]),
        )


def _encoder_entry(column: str, spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"encoders.{column}: expected a name or a mapping with 'name'")
    return dict(spec)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def _check_keys(cls: type, data: Mapping[str, Any], prefix: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[prefix + k for k in unknown]}; known: {[prefix + k for k in known]}"
        )
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if not _fits(value, hints[key]):
            raise ConfigError(f"{prefix}{key}: expected {_type_name(hints[key])}, got {value!r}")


def _section(cls: type[Any], raw: Any, prefix: str) -> Any:
    data = _mapping(raw, prefix.rstrip(".") or "config")
    _check_keys(cls, data, prefix)
    return cls(**data)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a YAML/JSON value fits a field's type hint (ints are floats, bools are not ints)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    base = origin or hint
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is dict:
        return isinstance(value, Mapping)
    if base is list:
        return isinstance(value, list)
    if dataclasses.is_dataclass(base) or base is Binding:
        return isinstance(value, Mapping)
    return isinstance(value, base)


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def read_align_config(path: str | Path, overrides: Sequence[str] = ()) -> AlignConfig:
    """Parse a YAML (or JSON) config file, apply ``key.path=value`` overrides, check it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    return AlignConfig.from_dict(apply_overrides(_mapping(raw, str(path)), overrides))


def write_align_config(config: AlignConfig, path: str | Path) -> None:
    """Write ``config`` as YAML (``.yaml``/``.yml``) or JSON (any other suffix)."""
    path = Path(path)
    data = config.to_dict()
    if path.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``train.epochs=3`` style overrides; values are parsed as YAML (numbers, lists, null)."""
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.path=value")
        node = out
        for part in key.split(".")[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a mapping")
            node = child
        node[key.split(".")[-1]] = yaml.safe_load(value)
    return out
