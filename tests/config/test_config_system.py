"""The one config system: packaged recipes by name, one override grammar, errors that name the
key path and the keys allowed there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from omnifuse.config import (
    apply_overrides,
    list_recipes,
    parse_override,
    read_config_file,
    resolve_recipe,
    section,
)
from omnifuse.errors import ConfigError


def test_recipes_ship_in_the_package_and_resolve_by_name() -> None:
    names = list_recipes()
    assert {"av-digits-concat", "world-align", "world-caption", "av-digits-sweep"} <= set(names)
    path = resolve_recipe("av-digits-concat")
    assert path.name == "av-digits-concat.yaml" and "omnifuse" in path.parts
    assert resolve_recipe("av-digits-concat.yaml") == path


def test_a_path_wins_over_a_recipe_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("mine.yaml").write_text("a: 1\n")
    assert read_config_file("mine.yaml")[1] == {"a": 1}
    with pytest.raises(ConfigError, match="not found: no such file, and not a packaged recipe"):
        resolve_recipe("no-such-recipe")


def test_overrides_parse_values_as_yaml() -> None:
    data = {"train": {"epochs": 10}, "model": None}
    out = apply_overrides(
        data, ["train.epochs=3", "train.lr=1e-3", "model.fusion_cfg={dim: 16}", "x.y=null"]
    )
    assert out == {
        "train": {"epochs": 3, "lr": 1e-3},
        "model": {"fusion_cfg": {"dim": 16}},
        "x": {"y": None},
    }
    assert data == {"train": {"epochs": 10}, "model": None}  # a copy
    assert parse_override("data.splits=[a, b]") == (["data", "splits"], ["a", "b"])
    for bad in ("epochs", "=3", "a..b=1", "a.b={unclosed"):
        with pytest.raises(ConfigError, match="override"):
            parse_override(bad)
    with pytest.raises(ConfigError, match=r"'train\.epochs' is not a mapping"):
        apply_overrides(data, ["train.epochs.x=1"])


@dataclass
class Inner:
    size: int = 1
    names: list[str] = field(default_factory=list)


def test_errors_name_the_key_path_and_the_allowed_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['train.sise'\]; allowed: "):
        section(Inner, {"sise": 3}, "train.")
    with pytest.raises(ConfigError, match=r"train\.size: expected int, got 'big'"):
        section(Inner, {"size": "big"}, "train.")
    with pytest.raises(ConfigError, match=r"train\.size: expected int, got True"):
        section(Inner, {"size": True}, "train.")
    assert section(Inner, None, "train.") == Inner()


@pytest.mark.parametrize("name", ["av-digits-concat", "world-align", "world-caption"])
def test_every_training_command_reads_recipes_by_name(name: str) -> None:
    from omnifuse.align.config import read_align_config
    from omnifuse.projector import read_projector_config
    from omnifuse.train.recipe import read_run_config

    reader = {
        "av-digits-concat": read_run_config,
        "world-align": read_align_config,
        "world-caption": read_projector_config,
    }[name]
    config = reader(name, ["train.epochs=2"])
    assert config.train.epochs == 2
