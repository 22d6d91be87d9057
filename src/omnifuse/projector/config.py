"""The settings of a projector run, read from YAML (see ``configs/world-caption.yaml``)::

    task: caption                # caption | video-caption | vqa (sets the metrics)
    data: {dataset: world, manifest: scenes, size: 600, seed: 0, dir: runs/data/world-600-s0}
    encoders:                    # input column → frozen encoder (features are cached)
      image: {name: effnet-lite0, image_size: 128}
    cache: {dir: runs/cache/world-600-s0, batch_size: 32}
    lm:                          # builtin: pretrained here on the dataset's text, then frozen
      kind: builtin              # or  {kind: hf, path: /models/my-causal-lm, dtype: fp32}
      size: {dim: 192, layers: 4, heads: 4}
      pretrain: {epochs: 8}
    projector: {kind: mlp2, tokens: {image: 16}, fusion: null}
    prompt: ""                   # text after the soft prompt; {column} fields are filled in
    target: caption              # a text column, or clip_description (world video)
    train: {epochs: 20, batch_size: 32, lr: 0.001}
    max_tokens: 32               # generation limit at evaluation
    output: runs/world-caption

Every key is checked; a misspelt or mistyped one is a :class:`~omnifuse.errors.ConfigError`
naming it. ``omnifuse projector train --set train.epochs=3`` overrides a value.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from omnifuse.errors import ConfigError
from omnifuse.projector.decoder import DecoderConfig, PretrainConfig
from omnifuse.projector.lm import LM_KINDS
from omnifuse.projector.model import PROJECTOR_KINDS
from omnifuse.train.recipe import apply_overrides

TASKS = ("caption", "video-caption", "vqa")
DERIVED_TARGETS = ("clip_description",)


def _check_keys(data: dict[str, Any], cls: type, prefix: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[prefix + k for k in unknown]}; known: "
            f"{sorted(prefix + k for k in known)}"
        )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: expected an integer >= 1, got {value!r}")
    return value


@dataclass
class LMSpec:
    """The frozen LM: ``builtin`` (pretrained by the run unless ``path`` names a decoder folder)
    or ``hf`` (a local Hugging Face causal-LM folder). ``size`` and ``pretrain`` set the
    built-in decoder's :class:`DecoderConfig` and :class:`PretrainConfig`; ``keyword_context``
    adds each pretraining text after its shuffled words (see
    :func:`omnifuse.projector.data.keyword_context`)."""

    kind: str = "builtin"
    path: str | None = None
    dtype: str = "fp32"
    size: dict[str, Any] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    keyword_context: bool = True

    @classmethod
    def from_dict(cls, data: Any) -> LMSpec:
        raw = _mapping(data, "lm")
        _check_keys(raw, cls, "lm.")
        spec = cls(**raw)
        if spec.kind not in LM_KINDS:
            raise ConfigError(f"lm.kind: expected one of {LM_KINDS}, got {spec.kind!r}")
        if spec.kind == "hf" and not spec.path:
            raise ConfigError("lm.path: an hf LM is read from a local folder; give its path")
        if not isinstance(spec.keyword_context, bool):
            raise ConfigError("lm.keyword_context: expected true or false")
        if spec.dtype not in ("fp32", "bf16"):
            raise ConfigError(f"lm.dtype: expected fp32 or bf16, got {spec.dtype!r}")
        _check_keys(spec.size, DecoderConfig, "lm.size.")
        if "vocab_size" in spec.size:
            raise ConfigError("lm.size.vocab_size is set from the vocabulary; remove it")
        _check_keys(spec.pretrain, PretrainConfig, "lm.pretrain.")
        return spec

    def pretrain_config(self) -> PretrainConfig:
        return PretrainConfig(**self.pretrain)


@dataclass
class ProjectorSpec:
    """The soft-prompt side: projector ``kind`` (linear | mlp2) and ``hidden`` width, soft
    ``tokens`` per input column, an optional token ``fusion`` with ``fusion_cfg``."""

    kind: str = "mlp2"
    hidden: int | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    fusion: str | None = None
    fusion_cfg: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, columns: Sequence[str]) -> ProjectorSpec:
        raw = _mapping(data, "projector")
        _check_keys(raw, cls, "projector.")
        spec = cls(**raw)
        if spec.kind not in PROJECTOR_KINDS:
            raise ConfigError(f"projector.kind: expected one of {PROJECTOR_KINDS}")
        if spec.hidden is not None:
            _positive_int(spec.hidden, "projector.hidden")
        spec.tokens = {c: 8 for c in columns} | _mapping(spec.tokens, "projector.tokens")
        for column, count in spec.tokens.items():
            if column not in columns:
                raise ConfigError(f"projector.tokens.{column}: not an encoded column {columns}")
            _positive_int(count, f"projector.tokens.{column}")
        spec.fusion_cfg = _mapping(spec.fusion_cfg, "projector.fusion_cfg")
        return spec


@dataclass
class ProjectorTrainConfig:
    """AdamW (weight decay on matrices) with linear warmup and cosine decay, gradient clipping,
    best weights by validation loss, stop after ``patience`` epochs without improvement.
    ``threads``: torch CPU threads while training (models this small train fastest on one,
    and far faster on one when the CPU is shared); null keeps torch's setting."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    grad_clip: float | None = 1.0
    patience: int | None = None
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1
    progress: bool = True

    @classmethod
    def from_dict(cls, data: Any) -> ProjectorTrainConfig:
        raw = _mapping(data, "train")
        _check_keys(raw, cls, "train.")
        config = cls(**raw)
        _positive_int(config.epochs, "train.epochs")
        _positive_int(config.batch_size, "train.batch_size")
        if config.patience is not None:
            _positive_int(config.patience, "train.patience")
        if config.threads is not None:
            _positive_int(config.threads, "train.threads")
        if not isinstance(config.lr, (int, float)) or config.lr <= 0:
            raise ConfigError(f"train.lr: expected a positive number, got {config.lr!r}")
        if not isinstance(config.weight_decay, (int, float)) or config.weight_decay < 0:
            raise ConfigError("train.weight_decay: expected a number >= 0")
        if not isinstance(config.warmup_ratio, (int, float)) or not 0 <= config.warmup_ratio < 1:
            raise ConfigError("train.warmup_ratio: expected a number in [0, 1)")
        if config.grad_clip is not None and (
            not isinstance(config.grad_clip, (int, float)) or config.grad_clip <= 0
        ):
            raise ConfigError("train.grad_clip: expected a positive number or null")
        return config


@dataclass
class ProjectorConfig:
    """A whole projector run (see the module docstring)."""

    task: str
    data: dict[str, Any]
    encoders: dict[str, dict[str, Any]]
    lm: LMSpec
    projector: ProjectorSpec
    train: ProjectorTrainConfig
    target: str
    output: Path
    prompt: str = ""
    cache: dict[str, Any] = field(default_factory=dict)
    max_tokens: int = 32

    @property
    def columns(self) -> tuple[str, ...]:
        """The encoded input columns, sorted (the soft prompt's order)."""
        return tuple(sorted(self.encoders))

    def prompt_fields(self) -> list[str]:
        """Columns named by ``{field}`` in the prompt template."""
        return [name for _, name, _, _ in string.Formatter().parse(self.prompt) if name]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output"] = str(self.output)
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> ProjectorConfig:
        data = _mapping(raw, "the projector config")
        _check_keys(data, cls, "")
        for key in ("task", "data", "encoders", "target", "output"):
            if key not in data:
                raise ConfigError(f"missing key {key!r}")
        task = data["task"]
        if task not in TASKS:
            raise ConfigError(f"task: expected one of {TASKS}, got {task!r}")
        encoders = _encoders(data["encoders"])
        columns = sorted(encoders)
        prompt = data.get("prompt") or ""
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt: expected a text template, got {prompt!r}")
        source = _mapping(data["data"], "data")
        if not source.get("dataset") and not source.get("manifest"):
            raise ConfigError("data: give 'dataset' (a built-in dataset) or 'manifest' (a path)")
        config = cls(
            task=task,
            data=source,
            encoders=encoders,
            lm=LMSpec.from_dict(data.get("lm")),
            projector=ProjectorSpec.from_dict(data.get("projector"), columns),
            train=ProjectorTrainConfig.from_dict(data.get("train")),
            target=str(data["target"]),
            output=Path(str(data["output"])),
            prompt=prompt,
            cache=_mapping(data.get("cache"), "cache"),
            max_tokens=_positive_int(data.get("max_tokens", 32), "max_tokens"),
        )
        try:
            config.prompt.format(**{name: "" for name in config.prompt_fields()})
        except (ValueError, IndexError) as err:
            raise ConfigError(f"prompt: not a valid template ({err})") from None
        return config


def _encoders(value: Any) -> dict[str, dict[str, Any]]:
    encoders = _mapping(value, "encoders")
    if not encoders:
        raise ConfigError("encoders: map at least one input column to an encoder")
    out: dict[str, dict[str, Any]] = {}
    for column, spec in encoders.items():
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ConfigError(f"encoders.{column}: expected a name or a mapping with 'name'")
        out[str(column)] = dict(spec)
    return out


def read_projector_config(path: str | Path, overrides: Sequence[str] = ()) -> ProjectorConfig:
    """Parse a YAML projector run file, apply ``key.path=value`` overrides, check every key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    return ProjectorConfig.from_dict(apply_overrides(_mapping(raw, str(path)), overrides))
