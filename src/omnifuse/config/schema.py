"""Typed config sections from YAML/JSON values: every key checked against a dataclass's fields
and type hints, so a misspelt or mistyped key is a :class:`~omnifuse.errors.ConfigError` that
names its full key path and the keys allowed there."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from omnifuse.errors import ConfigError

T = TypeVar("T")


def mapping(value: Any, where: str, *, optional: bool = False) -> dict[str, Any]:
    """``value`` as a dict (None → {} when ``optional``), or a ConfigError naming ``where``."""
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def check_keys(cls: type, data: Mapping[str, Any], prefix: str) -> None:
    """Every key of ``data`` is a field of dataclass ``cls`` and fits the field's type hint."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        allowed = [prefix + k for k in known]
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; allowed: {allowed}")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if not fits(value, hints[key]):
            raise ConfigError(f"{prefix}{key}: expected {type_name(hints[key])}, got {value!r}")


def section(cls: type[T], raw: Any, prefix: str, *, optional: bool = True) -> T:
    """Build dataclass ``cls`` from ``raw`` (a mapping; None → defaults when ``optional``)
    after :func:`check_keys`; ``prefix`` is the key path, e.g. ``"train."``."""
    data = mapping(raw, prefix.rstrip(".") or "config", optional=optional)
    check_keys(cls, data, prefix)
    try:
        return cls(**data)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {err}") from None


def fits(value: Any, hint: Any) -> bool:
    """Whether a YAML/JSON value fits a field's type hint (ints are floats, bools are not ints)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    base = origin or hint
    if base is Path:
        return isinstance(value, (str, Path))
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is dict:
        return isinstance(value, Mapping)
    if base in (list, tuple):
        return isinstance(value, (list, tuple))
    if dataclasses.is_dataclass(base):
        return isinstance(value, Mapping)
    if not isinstance(base, type):
        return True
    return isinstance(value, base)


def type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def encoder_entries(value: Any, *, where: str = "encoders") -> dict[str, dict[str, Any]]:
    """``column → name`` or ``column → {name: ..., options}`` → ``column → {name, options}``."""
    encoders = mapping(value, where)
    if not encoders:
        raise ConfigError(f"{where}: map at least one column to an encoder")
    out: dict[str, dict[str, Any]] = {}
    for column, spec in encoders.items():
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ConfigError(f"{where}.{column}: expected a name or a mapping with 'name'")
        out[str(column)] = dict(spec)
    return out


ENCODER_RESERVED = ("name", "seed")
"""Keys of an encoder entry that are not constructor options."""


def encoder_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor options of an encoder entry (everything but ``name`` and ``seed``)."""
    return {k: v for k, v in spec.items() if k not in ENCODER_RESERVED}
