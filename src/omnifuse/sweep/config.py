"""What a sweep runs: the datasets it knows, its settings, and the strategies they expand to."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnifuse.config import apply_overrides, read_config_file, section
from omnifuse.data.manifest import resolve_schema
from omnifuse.data.schema import DatasetInfo
from omnifuse.errors import ConfigError
from omnifuse.fusion import fusions, list_fusions
from omnifuse.train import TrainConfig

MULTIBENCH_LRTF = {"dim": 120, "rank": 40, "modality_dims": {"image": 48, "audio": 192}}
"""MultiBench's AV-MNIST low-rank tensor example, ``LowRankTensorFusion([48, 192], 120, 40)``:
image and audio projected to 48 and 192 features, 120 outputs, rank 40; its head is
``MLP(120, 100, 10)``, a 100-unit hidden layer."""

MODALITY_ENCODERS: dict[str, dict[str, Any]] = {
    "image": {"name": "effnet-lite0", "image_size": 96},
    "audio": {"name": "whisper-tiny-en", "pad_to_30s": False},
    "text": {"name": "minilm"},
    "video": {"name": "video"},
    "series": {"name": "series-cnn"},
    "tabular": {"name": "tabular"},
}
"""The encoder a sweep gives a column of each kind unless told otherwise (built-in datasets and
user manifests alike); an ``--encoder COLUMN=NAME`` with the same name keeps these options."""


@dataclass(frozen=True)
class DataSpec:
    """Data as a sweep uses it: which manifest (a file name in the dataset folder, or a path
    for a user's manifest), columns, target and encoders, and for a built-in dataset its builder,
    default size (samples for av-digits, scenes for world), builder options and per-fusion option
    overrides."""

    name: str
    manifest: str
    columns: tuple[str, ...]
    target: str
    encoders: dict[str, dict[str, Any]]
    size: int = 0
    builder: str | None = None
    builder_options: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    group_by: str | None = None


DATASETS: dict[str, DataSpec] = {
    "av-digits": DataSpec(
        name="av-digits",
        builder="av-digits",
        manifest="manifest.jsonl",
        columns=("audio", "image"),
        target="label",
        encoders={c: MODALITY_ENCODERS[c] for c in ("audio", "image")},
        size=2000,
        overrides={"low-rank-tensor": {"fusion_cfg": MULTIBENCH_LRTF, "head_cfg": {"hidden": 100}}},
    ),
    "world-vqa": DataSpec(
        name="world-vqa",
        builder="world",
        manifest="vqa.jsonl",
        columns=("image", "question_audio"),
        target="answer",
        encoders={
            "image": {**MODALITY_ENCODERS["image"], "image_size": 128},
            "question_audio": MODALITY_ENCODERS["audio"],
        },
        size=800,
        builder_options={"video_clips": 1},
    ),
    "world-sensors": DataSpec(
        name="world-sensors",
        builder="world-sensors",
        manifest="sensors.jsonl",
        columns=("camera", "radar", "sound"),
        target="event",
        encoders={
            "camera": {
                "name": "video",
                "image_cfg": {"image_size": 96, "center_crop": False},
                "audio": "logmel-cnn",  # the camera records no sound: its audio half is zeros
                "num_frames": 6,
            },
            "radar": {"name": "series-cnn", "rate": 20.0, "dim": 256, "strides": [1]},
            "sound": MODALITY_ENCODERS["audio"],
        },
        size=1000,
        group_by="condition",
    ),
    "affect": DataSpec(
        name="affect",
        builder="affect",
        manifest="manifest.jsonl",
        columns=("audio", "text"),
        target="label",
        encoders={"audio": {"name": "prosody"}, "text": {"name": "vader"}},
        size=1200,
        group_by="agreement",
    ),
}


@dataclass
class Strategy:
    """One row of the leaderboard: a fusion over some columns with its options."""

    name: str
    fusion: str
    columns: tuple[str, ...]
    fusion_cfg: dict[str, Any] = field(default_factory=dict)
    head_cfg: dict[str, Any] = field(default_factory=dict)
    modality_dropout: float = 0.0


@dataclass
class SweepConfig:
    """What to sweep and with which budget (the same for every strategy).

    - ``fusions``: registry names, or ``["all"]``; ``singles``: the fusions of the
      single-modality baselines (each trained on one column);
    - ``dropout_study``: fusions trained a second time with ``study_dropout`` modality dropout,
      to compare how much accuracy falls when a modality goes missing;
    - ``size``: dataset size (default: the dataset's own);
    - ``builder_options`` and ``encoders`` override the dataset's defaults (an encoder entry with
      the same name is merged into the default, another name replaces it);
    - ``max_tokens`` caps each modality's token sequence in token-level fusions;
    - ``noise``: noise curves on at most ``noise_samples`` test samples;
    - ``workers``: training processes (each with ``threads`` torch threads, default 1); the
      evaluation and the cost measurements run afterwards in this process, one at a time;
    - ``group_by``: a manifest column (a recording condition, whether the modalities agree)
      whose every value gets its own test accuracy column (default: the dataset's own, if any).
    """

    data: str = "av-digits"
    target: str | None = None
    fusions: list[str] = field(default_factory=lambda: ["all"])
    out: Path = Path("sweep-out")
    size: int | None = None
    seed: int = 0
    data_dir: Path | None = None
    cache_dir: Path | None = None
    builder_options: dict[str, Any] = field(default_factory=dict)
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int | None = None
    dim: int = 128
    dropout: float = 0.1
    max_tokens: int | None = 16
    modality_dropout: float = 0.0
    head_hidden: int = 0
    singles: list[str] = field(default_factory=lambda: ["concat", "transformer"])
    dropout_study: list[str] = field(
        default_factory=lambda: ["concat", "low-rank-tensor", "cross-attention"]
    )
    study_dropout: float = 0.5
    noise: bool = False
    noise_samples: int = 200
    shapley: bool = True
    plots: bool = True
    encode_batch_size: int = 32
    workers: int = 1
    threads: int | None = None
    progress: bool = True
    group_by: str | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.data_dir = None if self.data_dir is None else Path(self.data_dir)
        self.cache_dir = None if self.cache_dir is None else Path(self.cache_dir)

    @property
    def spec(self) -> DataSpec:
        """The built-in dataset named ``data``, or the manifest (or dataset folder) at that path."""
        if self.data in DATASETS:
            spec = DATASETS[self.data]
            return spec if self.target is None else dataclasses.replace(spec, target=self.target)
        if Path(self.data).exists():
            return manifest_spec(Path(self.data), self.target, list(self.encoders))
        raise ConfigError(
            f"sweep data {self.data!r} is neither a built-in dataset ({sorted(DATASETS)}) nor "
            "a manifest file or dataset folder"
        )

    def encoder_specs(self) -> dict[str, dict[str, Any]]:
        """Encoder of every column: the dataset's defaults, overridden per column."""
        specs = {c: dict(s) for c, s in self.spec.encoders.items()}
        for column, spec in self.encoders.items():
            if column not in specs:
                raise ConfigError(f"encoder given for {column!r}, not a column of {self.data}")
            same = spec.get("name", specs[column]["name"]) == specs[column]["name"]
            specs[column] = {**specs[column], **spec} if same else dict(spec)
        return specs

    @property
    def group_column(self) -> str | None:
        """``group_by``, else the dataset's default grouping column."""
        return self.group_by or self.spec.group_by

    @property
    def data_size(self) -> int:
        """``size``, or the dataset's default size."""
        return self.size if self.size is not None else self.spec.size

    def options(self) -> dict[str, Any]:
        """Builder options: the dataset's defaults, overridden by ``builder_options``."""
        return {**self.spec.builder_options, **self.builder_options}

    def folders(self) -> tuple[Path, Path]:
        """The dataset folder and the feature cache folder (for a built-in dataset named by
        dataset, size, seed and a digest of the builder options, so another variant never reuses
        them; a user's manifest stays where it is)."""
        spec = self.spec
        if spec.builder is None:
            manifest = Path(spec.manifest)
            tag = f"{manifest.parent.name}-{manifest.stem}"
            return manifest.parent, self.cache_dir or self.out / "cache" / tag
        tag = f"{self.data}-{self.data_size}-s{self.seed}"
        if self.options():
            digest = hashlib.sha256(json.dumps(self.options(), sort_keys=True).encode())
            tag += "-" + digest.hexdigest()[:8]
        data_dir = self.data_dir or self.out / "data" / tag
        cache_dir = self.cache_dir or self.out / "cache" / tag
        return data_dir, cache_dir

    def train_config(self) -> TrainConfig:
        """The budget every strategy gets."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            seed=self.seed,
            progress=False,
            device="cpu",
        )


def resolve_fusions(names: Sequence[str]) -> list[str]:
    """``all`` → every registered fusion; otherwise the names, checked against the registry."""
    known = list_fusions()
    if list(names) == ["all"]:
        return known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown fusion(s) {unknown}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))


def base_options(fusion: str, config: SweepConfig) -> dict[str, Any]:
    """Options every strategy shares (size, dropout), plus the token cap where the fusion
    takes one."""
    options: dict[str, Any] = {"dim": config.dim, "dropout": config.dropout}
    accepts = inspect.signature(fusions.get(fusion)).parameters
    if config.max_tokens is not None and "max_tokens" in accepts:
        options["max_tokens"] = config.max_tokens
    return options


def fused_strategy(name: str, config: SweepConfig) -> Strategy:
    """Fusion ``name`` over all columns, with the dataset's overrides for it."""
    override = config.spec.overrides.get(name, {})
    return Strategy(
        name=name,
        fusion=name,
        columns=tuple(sorted(config.spec.columns)),
        fusion_cfg={**base_options(name, config), **override.get("fusion_cfg", {})},
        head_cfg={"hidden": config.head_hidden, **override.get("head_cfg", {})},
        modality_dropout=config.modality_dropout,
    )


def single_strategies(config: SweepConfig) -> list[Strategy]:
    """One model per column and baseline fusion, trained on that column alone."""
    result = []
    for single in resolve_fusions(config.singles) if config.singles else []:
        if getattr(fusions.get(single), "kind", "feature") == "decision":
            raise ConfigError(f"single-modality baselines need a feature fusion, not {single!r}")
        for column in sorted(config.spec.columns):
            label = f"{column} only" + (f" ({single})" if len(config.singles) > 1 else "")
            head = {"hidden": config.head_hidden}
            options = base_options(single, config)
            result.append(
                Strategy(label, single, (column,), options, head, config.modality_dropout)
            )
    return result


def dropout_twin(strategy: Strategy, dropout: float) -> Strategy:
    twin = copy.deepcopy(strategy)
    twin.name = f"{strategy.name} + modality dropout {dropout:g}"
    twin.modality_dropout = dropout
    return twin


def strategies_for(config: SweepConfig) -> list[Strategy]:
    """Fusions over all columns, single-modality baselines, then the dropout-study twins."""
    result = [fused_strategy(name, config) for name in resolve_fusions(config.fusions)]
    result += single_strategies(config)
    for name in resolve_fusions(config.dropout_study) if config.dropout_study else []:
        base = next((s for s in result if s.name == name), None)
        if base is None:
            base = fused_strategy(name, config)
            result.append(base)
        if base.modality_dropout == config.study_dropout:
            raise ConfigError("the dropout study needs a dropout different from the sweep's")
        result.append(dropout_twin(base, config.study_dropout))
    return result


def manifest_spec(path: Path, target: str | None, columns: Sequence[str]) -> DataSpec:
    """A user's manifest (``.jsonl``/``.csv``, schema sidecar or inferred) or dataset folder
    as sweep data: the given ``columns`` (default: every modality column of the schema), each
    with the default encoder of its kind, and ``target`` (default: the schema's first label)."""
    manifest = _manifest_in(path) if path.is_dir() else path
    schema = resolve_schema(manifest, None)
    chosen = tuple(sorted(columns or schema.modalities))
    unknown = [c for c in chosen if c not in schema.modalities]
    if unknown or not chosen:
        raise ConfigError(
            f"--encoder: {unknown or 'no column'} not modality column(s) of {manifest} "
            f"(it has {sorted(schema.modalities)})"
        )
    label = target or (schema.labels[0] if schema.labels else None)
    if label is None:
        raise ConfigError(f"{manifest} has no label column; name one with --target")
    kinds = {c: schema.modalities[c] for c in chosen}
    return DataSpec(
        name=manifest.stem,
        manifest=str(manifest.resolve()),
        columns=chosen,
        target=label,
        encoders={c: dict(MODALITY_ENCODERS[kind]) for c, kind in kinds.items()},
        overrides=_built_in_overrides(manifest, chosen),
    )


def _built_in_overrides(manifest: Path, columns: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """A manifest that a built-in dataset wrote (its folder's ``dataset.json`` names it) with
    that dataset's columns gets the dataset's per-fusion settings, as the built-in name does."""
    if not (manifest.parent / "dataset.json").is_file():
        return {}
    built = DatasetInfo.read(manifest.parent).name
    for spec in DATASETS.values():
        same_data = (spec.builder, spec.manifest) == (built, manifest.name)
        if same_data and tuple(sorted(spec.columns)) == columns:
            return spec.overrides
    return {}


def _manifest_in(folder: Path) -> Path:
    """The manifest of a dataset folder: the first one ``dataset.json`` lists, else the only
    ``.jsonl``/``.csv`` file in it."""
    if (folder / "dataset.json").is_file():
        info = DatasetInfo.read(folder)
        return folder / next(iter(info.manifests.values()))
    found = sorted(p for p in folder.iterdir() if p.suffix in (".jsonl", ".csv"))
    if len(found) != 1:
        names = [p.name for p in found]
        raise ConfigError(f"{folder}: expected one manifest (.jsonl or .csv), found {names}")
    return found[0]


def read_sweep_config(
    name_or_path: str | Path | None,
    overrides: Sequence[str] = (),
    settings: dict[str, Any] | None = None,
) -> SweepConfig:
    """A sweep recipe (its keys are :class:`SweepConfig`'s fields) by name or path — or none —
    updated with ``settings`` (e.g. the options given on the command line), then with
    ``section.key=value`` overrides; every key and type checked."""
    raw = read_config_file(name_or_path)[1] if name_or_path is not None else {}
    raw = apply_overrides({**raw, **(settings or {})}, overrides)
    return section(SweepConfig, raw, "")
