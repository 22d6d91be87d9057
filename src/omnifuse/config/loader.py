"""The one loader of recipe files: YAML (or JSON) run descriptions that ship inside the package.

A recipe is named by its file name without the suffix (``av-digits-concat``), so
``omnifuse train --config av-digits-concat`` works after a plain ``pip install``; a path to a
file of the user's works everywhere a name does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from omnifuse.config.overrides import apply_overrides
from omnifuse.config.schema import mapping
from omnifuse.errors import ConfigError

SUFFIXES = (".yaml", ".yml", ".json")


def recipes_dir() -> Path:
    """The folder of the packaged recipes."""
    return Path(str(resources.files("omnifuse.config") / "recipes"))


def list_recipes() -> list[str]:
    """Names of the packaged recipes, sorted."""
    return sorted(p.stem for p in recipes_dir().iterdir() if p.suffix in SUFFIXES)


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A path to an existing file, else the packaged recipe of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    if path.name == text:  # a bare name: a packaged recipe, with or without its suffix
        names = [text] if path.suffix in SUFFIXES else [text + s for s in SUFFIXES]
        for name in names:
            candidate = recipes_dir() / name
            if candidate.is_file():
                return candidate
        raise ConfigError(
            f"config {text!r} not found: no such file, and not a packaged recipe "
            f"(recipes: {', '.join(list_recipes())})"
        )
    raise ConfigError(f"config file {path} not found")


def read_config_file(
    name_or_path: str | Path, overrides: Sequence[str] = ()
) -> tuple[Path, dict[str, Any]]:
    """A recipe name or a YAML/JSON path → (its path, its mapping with ``overrides`` applied)."""
    path = resolve_recipe(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML/JSON ({err})") from None
    return path, apply_overrides(mapping(raw, str(path)), overrides)
