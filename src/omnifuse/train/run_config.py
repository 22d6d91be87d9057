"""A fusion training run as one YAML file: data, encoders, features, model, training, output.

::

    data:
      dataset: av-digits          # a built-in dataset, built on first use, or instead
      # manifest: my/data.jsonl   # a manifest path (with dataset: the key of one of its manifests)
      size: 300                   # built-in datasets: size, seed, builder options, folder
      seed: 0
      options: {}
      dir: runs/data/av-digits    # default: <output>/../data/<dataset>-<size>-s<seed>
      target: label               # the label column
      splits: {train: train, val: val, test: test}
      matching: {swap: [image], distinct: caption}   # task matching: derive caption-image pairs
    encoders:                     # column → encoder registry name and options
      image: {name: effnet-lite0, image_size: 64}
      audio: {name: whisper-tiny-en}
    cache:                        # present: train on cached features (encoded first, resumable)
      dir: runs/cache/av-digits   # absent: train end to end, encoders inside the model
      batch_size: 32              # default dir: <output>/../cache/<data folder>
      device: cpu
      dtype: fp32
      seed: 0                     # seeds randomly initialised encoders
      tokens: true                # store token features (token-level fusions need them)
    augment: {image_crop: 0.8, audio_snr_db: [5, 30], audio_shift_s: 0.1}  # end to end only
    distill: {teacher: runs/av-digits-transformer, temperature: 2.0, alpha: 0.5}  # optional
    model: {task: classification, fusion: concat, fusion_cfg: {dim: 128}, head: classifier}
    train: {epochs: 30, batch_size: 32, lr: 0.001, patience: 5}   # TrainConfig
    output: runs/av-digits-concat # the model folder

Relative paths are taken from the working directory. Every key is checked up front: a misspelt
or mistyped key is a :class:`~omnifuse.errors.ConfigError` naming its key path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnifuse.config import CacheSection, DataSection, read_config_file
from omnifuse.config.schema import check_keys, encoder_entries, mapping, section
from omnifuse.errors import ConfigError
from omnifuse.train.augment import AugmentConfig
from omnifuse.train.config import TrainConfig
from omnifuse.train.distill import DistillSection


@dataclass
class RunData(DataSection):
    """The shared data section plus the label column and, for the matching task, how
    caption–image pairs are derived (:func:`omnifuse.tasks.matching.write_matching_manifest`)."""

    target: str | None = None
    matching: dict[str, Any] | None = None


@dataclass
class ModelSection:
    """The parts of a :class:`~omnifuse.models.ModelConfig` a run chooses (the columns, their
    feature sizes and the classes come from the data)."""

    task: str = "classification"
    fusion: str = "concat"
    fusion_cfg: dict[str, Any] = field(default_factory=dict)
    head: str = "classifier"
    head_cfg: dict[str, Any] = field(default_factory=dict)
    task_cfg: dict[str, Any] = field(default_factory=dict)
    modality_dropout: float = 0.0
    classes: list[str] | None = None

    def fields(self) -> dict[str, Any]:
        """The ModelConfig fields this section sets."""
        return {k: v for k, v in asdict(self).items() if k != "classes"}


@dataclass
class RunConfig:
    """A parsed, checked run file (see the module docstring)."""

    data: RunData
    encoders: dict[str, dict[str, Any]]
    model: ModelSection
    train: TrainConfig
    output: Path
    cache: CacheSection | None = None
    augment: AugmentConfig | None = None
    distill: DistillSection | None = None

    @property
    def end_to_end(self) -> bool:
        return self.cache is None

    @property
    def target(self) -> str:
        """The label column: ``data.target``, else ``match`` for matching and ``label``."""
        fallback = "match" if self.model.task == "matching" else "label"
        return self.data.target or fallback

    @classmethod
    def from_dict(cls, raw: Any) -> RunConfig:
        data = mapping(raw, "the run config")
        check_keys(_RunKeys, data, "")
        for key in ("data", "encoders", "model", "output"):
            if key not in data:
                raise ConfigError(f"missing key {key!r}")
        cache = data.get("cache")
        augment = data.get("augment")
        distill = data.get("distill")
        if augment is not None and cache is not None:
            raise ConfigError("augment: augmentation needs end-to-end training (remove 'cache')")
        return cls(
            data=section(RunData, data["data"], "data.", optional=False),
            encoders=encoder_entries(data["encoders"]),
            model=section(ModelSection, data["model"], "model.", optional=False),
            train=TrainConfig.from_dict(mapping(data.get("train"), "train", optional=True)),
            output=Path(str(data["output"])),
            cache=None if cache is None else section(CacheSection, cache, "cache."),
            augment=AugmentConfig.from_dict(augment) if augment is not None else None,
            distill=None if distill is None else section(DistillSection, distill, "distill."),
        )


@dataclass
class _RunKeys:
    """The top-level keys of a run file and their types (for :func:`check_keys`)."""

    data: dict[str, Any]
    encoders: dict[str, Any]
    model: dict[str, Any]
    output: Any
    cache: dict[str, Any] | None = None
    augment: dict[str, Any] | None = None
    distill: dict[str, Any] | None = None
    train: dict[str, Any] | None = None


def read_run_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """A recipe name or YAML/JSON path, with ``section.key=value`` overrides, checked."""
    return RunConfig.from_dict(read_config_file(name_or_path, overrides)[1])
