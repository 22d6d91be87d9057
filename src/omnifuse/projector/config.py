"""The settings of a projector run, read from YAML (see the ``world-caption`` recipe)::

    task: caption                # caption | video-caption | vqa (sets the metrics)
    data: {dataset: world, manifest: scenes, size: 600, seed: 0, dir: runs/data/world-600-s0}
    encoders:                    # input column → frozen encoder (features are cached)
      image: {name: effnet-lite0, image_size: 128}
    cache: {dir: runs/cache/world-600-s0, batch_size: 32}
    lm:                          # builtin: pretrained here on the dataset's text, then frozen
      kind: builtin              # or  {kind: hf, path: /models/my-causal-lm, dtype: fp32}
                                 # or  {kind: hf, path: gemma-3-270m} (packaged, see
                                 #     omnifuse.llm.gguf_hf; the world-caption-gemma recipe)
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnifuse.config import CacheSection, DataSection, read_config_file
from omnifuse.config.schema import check_keys, encoder_entries, mapping, section
from omnifuse.errors import ConfigError
from omnifuse.projector.decoder import DecoderConfig
from omnifuse.projector.lm import LM_KINDS
from omnifuse.projector.model import PROJECTOR_KINDS
from omnifuse.projector.pretrain import PretrainConfig
from omnifuse.train.config import TrainConfig

TASKS = ("caption", "video-caption", "vqa")
DERIVED_TARGETS = ("clip_description",)


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: expected an integer >= 1, got {value!r}")
    return value


@dataclass
class LMSpec:
    """The frozen LM: ``builtin`` (pretrained by the run unless ``path`` names a decoder folder)
    or ``hf`` (a local Hugging Face causal-LM folder, or a packaged LM's name: ``gemma-3-270m``).
    ``size`` and ``pretrain`` set the built-in decoder's :class:`DecoderConfig` and
    :class:`PretrainConfig`; ``keyword_context`` adds each pretraining text after its shuffled
    words (see :func:`omnifuse.projector.data.keyword_context`)."""

    kind: str = "builtin"
    path: str | None = None
    dtype: str = "fp32"
    size: dict[str, Any] = field(default_factory=dict)
    pretrain: dict[str, Any] = field(default_factory=dict)
    keyword_context: bool = True

    @classmethod
    def from_dict(cls, data: Any) -> LMSpec:
        raw = mapping(data, "lm", optional=True)
        check_keys(cls, raw, "lm.")
        spec = cls(**raw)
        if spec.kind not in LM_KINDS:
            raise ConfigError(f"lm.kind: expected one of {LM_KINDS}, got {spec.kind!r}")
        if spec.kind == "hf" and not spec.path:
            raise ConfigError("lm.path: an hf LM is read from a local folder; give its path")
        if not isinstance(spec.keyword_context, bool):
            raise ConfigError("lm.keyword_context: expected true or false")
        if spec.dtype not in ("fp32", "bf16"):
            raise ConfigError(f"lm.dtype: expected fp32 or bf16, got {spec.dtype!r}")
        check_keys(DecoderConfig, spec.size, "lm.size.")
        if "vocab_size" in spec.size:
            raise ConfigError("lm.size.vocab_size is set from the vocabulary; remove it")
        check_keys(PretrainConfig, spec.pretrain, "lm.pretrain.")
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
        raw = mapping(data, "projector", optional=True)
        check_keys(cls, raw, "projector.")
        spec = cls(**raw)
        if spec.kind not in PROJECTOR_KINDS:
            raise ConfigError(f"projector.kind: expected one of {PROJECTOR_KINDS}")
        if spec.hidden is not None:
            _positive_int(spec.hidden, "projector.hidden")
        spec.tokens = {c: 8 for c in columns} | mapping(
            spec.tokens, "projector.tokens", optional=True
        )
        for column, count in spec.tokens.items():
            if column not in columns:
                raise ConfigError(f"projector.tokens.{column}: not an encoded column {columns}")
            _positive_int(count, f"projector.tokens.{column}")
        spec.fusion_cfg = mapping(spec.fusion_cfg, "projector.fusion_cfg", optional=True)
        return spec


@dataclass
class ProjectorTrainConfig(TrainConfig):
    """The training section (:class:`~omnifuse.train.TrainConfig`) with the projector's
    defaults: best weights by validation loss, no early stopping, one torch thread (models this
    small train fastest on one, and far faster on one when the CPU is shared)."""

    epochs: int = 20
    metric: str = "loss"
    patience: int | None = None
    device: str = "cpu"
    threads: int | None = 1


@dataclass
class ProjectorConfig:
    """A whole projector run (see the module docstring)."""

    task: str
    data: DataSection
    encoders: dict[str, dict[str, Any]]
    lm: LMSpec
    projector: ProjectorSpec
    train: ProjectorTrainConfig
    target: str
    output: Path
    prompt: str = ""
    cache: CacheSection = field(default_factory=CacheSection)
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
        data = mapping(raw, "the projector config")
        check_keys(cls, data, "")
        for key in ("task", "data", "encoders", "target", "output"):
            if key not in data:
                raise ConfigError(f"missing key {key!r}")
        task = data["task"]
        if task not in TASKS:
            raise ConfigError(f"task: expected one of {TASKS}, got {task!r}")
        encoders = encoder_entries(data["encoders"])
        columns = sorted(encoders)
        prompt = data.get("prompt") or ""
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt: expected a text template, got {prompt!r}")
        config = cls(
            task=task,
            data=section(DataSection, data["data"], "data.", optional=False),
            encoders=encoders,
            lm=LMSpec.from_dict(data.get("lm")),
            projector=ProjectorSpec.from_dict(data.get("projector"), columns),
            train=ProjectorTrainConfig.from_dict(
                mapping(data.get("train"), "train", optional=True)
            ),
            target=str(data["target"]),
            output=Path(str(data["output"])),
            prompt=prompt,
            cache=section(CacheSection, data.get("cache"), "cache."),
            max_tokens=_positive_int(data.get("max_tokens", 32), "max_tokens"),
        )
        try:
            config.prompt.format(**{name: "" for name in config.prompt_fields()})
        except (ValueError, IndexError) as err:
            raise ConfigError(f"prompt: not a valid template ({err})") from None
        return config


def read_projector_config(
    name_or_path: str | Path, overrides: Sequence[str] = ()
) -> ProjectorConfig:
    """A recipe name or YAML/JSON path, with ``section.key=value`` overrides, every key checked."""
    return ProjectorConfig.from_dict(read_config_file(name_or_path, overrides)[1])
