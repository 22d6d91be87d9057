"""``ModelConfig``: everything needed to rebuild a fusion model, as plain JSON/YAML data.

A model is encoders (optional) + a fusion + a head, for a task. The *architecture* of a model is
simply its fusion's name: parallel, serial (one modality conditions the next), hierarchical and
mixed designs are all registered fusions, so ``fusion`` and ``fusion_cfg`` say everything about
how modalities are combined; :attr:`ModelConfig.architecture` returns that name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from omnifuse.errors import ConfigError


@dataclass
class ModelConfig:
    """The recipe of a :class:`~omnifuse.models.FusionModel`.

    - ``task``: a ``tasks`` registry name (classification, multilabel, regression, vqa, matching),
      with options ``task_cfg`` (e.g. ``aux_weight``, ``label_smoothing``);
    - ``modalities``: manifest column → feature size of its encoder;
    - ``encoders``: column → ``{"name": registry name, "seed": int, **cfg}``, how raw inputs of
      that column become features (``seed`` seeds randomly initialised encoders, as the feature
      cache does);
    - ``fusion``/``fusion_cfg`` and ``head``/``head_cfg``: registry names and options (a
      decision-level fusion produces the logits itself and has no head);
    - ``classes``: class names in output order (empty for regression); ``target``: the label
      column of the manifest;
    - ``modality_dropout``: training-time probability of hiding each present modality;
    - ``end_to_end``: the encoders are part of the model (built with it, trained with it when
      trainable, saved with it); otherwise they are fixed feature extractors built on demand.
    """

    task: str = "classification"
    modalities: dict[str, int] = field(default_factory=dict)
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fusion: str = "concat"
    fusion_cfg: dict[str, Any] = field(default_factory=dict)
    head: str = "classifier"
    head_cfg: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    modality_dropout: float = 0.0
    task_cfg: dict[str, Any] = field(default_factory=dict)
    target: str = "label"
    end_to_end: bool = False

    @property
    def architecture(self) -> str:
        """The model's architecture is its fusion: see the module docstring."""
        return self.fusion

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ModelConfig:
        """Build and validate; unknown keys and wrong types are ``ConfigError`` naming the key."""
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config key(s) {unknown}; known: {sorted(known)}")
        config = cls(**data)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is unusable."""
        for name in ("task", "fusion", "head", "target"):
            _check(isinstance(getattr(self, name), str) and getattr(self, name), name, "a name")
        for name in ("fusion_cfg", "head_cfg", "task_cfg", "encoders", "modalities"):
            value = getattr(self, name)
            _check(
                isinstance(value, dict) and all(isinstance(k, str) for k in value),
                name,
                "a mapping",
            )
        _check(bool(self.modalities), "modalities", "at least one column")
        for column, dim in self.modalities.items():
            ok = isinstance(dim, int) and not isinstance(dim, bool) and dim > 0
            _check(ok, f"modalities.{column}", "a positive integer")
        for column, spec in self.encoders.items():
            ok = isinstance(spec, dict) and isinstance(spec.get("name"), str)
            _check(ok, f"encoders.{column}", 'a mapping with a "name"')
            _check(column in self.modalities, f"encoders.{column}", "a column of modalities")
        _check(
            isinstance(self.classes, list) and all(isinstance(c, str) for c in self.classes),
            "classes",
            "a list of strings",
        )
        p = self.modality_dropout
        ok = isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= p < 1.0
        _check(ok, "modality_dropout", "a number in [0, 1)")
        _check(isinstance(self.end_to_end, bool), "end_to_end", "true or false")
        if self.end_to_end:
            missing = sorted(set(self.modalities) - set(self.encoders))
            _check(not missing, "encoders", f"an encoder for every column (missing {missing})")


def _check(ok: bool, key: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"model config key {key!r}: expected {expected}")
