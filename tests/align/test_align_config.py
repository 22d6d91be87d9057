"""AlignConfig: YAML/JSON round trips, checked keys and types, the shipped configs, presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omnifuse.align import AlignConfig, read_align_config, write_align_config
from omnifuse.align.presets import preset
from omnifuse.config import recipes_dir
from omnifuse.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _minimal(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "data": {"manifest": "pairs.jsonl"},
        "encoders": {"text": "minilm", "image": {"name": "effnet-lite0", "image_size": 64}},
        "pairs": [["text", "image"]],
    }
    config.update(changes)
    return config


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_through_files(tmp_path: Path, suffix: str) -> None:
    config = AlignConfig.from_dict(
        _minimal(
            encoders={"t": "minilm", "i": "effnet-lite0", "a": "whisper-tiny-en"},
            pairs=[["t", "i"]],
            bind=[{"column": "a", "anchor": "t"}],
            heads={"a": {"pool": "attention", "stride": 4}},
            train={"epochs": 3, "hard_negatives": "in-batch", "hard_beta": 2},
            output="runs/x",
        )
    )
    path = tmp_path / f"align{suffix}"
    write_align_config(config, path)
    again = read_align_config(path)
    assert again == config
    assert again.to_dict() == config.to_dict()
    assert again.head_config("a").stride == 4 and again.head_config("t").stride == 1
    assert again.columns == ["t", "i", "a"]


def test_encoder_names_become_entries() -> None:
    config = AlignConfig.from_dict(_minimal())
    assert config.encoders["text"] == {"name": "minilm"}


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"extra": 1}, r"unknown key\(s\) \['extra'\]"),
        ({"train": {"epoch": 3}}, r"train\.epoch"),
        ({"train": {"epochs": "3"}}, r"train\.epochs: expected int"),
        ({"train": {"lr": True}}, r"train\.lr: expected float"),
        ({"train": {"hard_negatives": "mined"}}, "hard_negatives"),
        ({"head": {"pool": "max"}}, r"head\.pool"),
        ({"heads": {"text": {"kind": "deep"}}}, r"head\.kind"),
        ({"heads": {"audio": {"dim": 3}}}, r"heads: \['audio'\]"),
        ({"pairs": [["text", "text"]]}, "two different columns"),
        ({"pairs": [["text", "video"]]}, r"\['video'\] have no entry"),
        ({"pairs": []}, "at least one pair"),
        ({"bind": [{"column": "image", "anchor": "text"}]}, "already aligned"),
        ({"data": {}}, "give 'dataset'"),
        ({"data": {"manifest": "m.jsonl", "size": 0}}, "size"),
        ({"encoders": {"text": {"image_size": 3}}}, "mapping with 'name'"),
    ],
)
def test_bad_configs_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AlignConfig.from_dict(_minimal(**changes))


def test_unused_encoders_and_bad_anchors() -> None:
    encoders = {"t": "minilm", "i": "effnet-lite0", "a": "whisper-tiny-en"}
    with pytest.raises(ConfigError, match="appear in neither"):
        AlignConfig.from_dict(_minimal(encoders=encoders, pairs=[["t", "i"]]))
    encoders["b"] = "speaker"
    with pytest.raises(ConfigError, match="anchor 'b' is not aligned"):
        AlignConfig.from_dict(
            _minimal(encoders=encoders, pairs=[["t", "i"]], bind=[{"column": "a", "anchor": "b"}])
        )


def test_overrides_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    write_align_config(AlignConfig.from_dict(_minimal()), path)
    config = read_align_config(path, ["train.epochs=7", "head.dim=64", "output=runs/y"])
    assert (config.train.epochs, config.head.dim, config.output) == (7, 64, "runs/y")
    with pytest.raises(ConfigError, match="not found"):
        read_align_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_align_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("name", ["world-align.yaml", "fashion-align.yaml"])
def test_shipped_configs_parse(name: str) -> None:
    config = read_align_config(recipes_dir() / name)
    assert config.output and config.data.group_by


def test_presets_are_valid_configs() -> None:
    world = AlignConfig.from_dict(preset("world", size=50))
    assert [b.column for b in world.bind] == ["caption_audio"]
    fashion = AlignConfig.from_dict(preset("fashion-mnist", size=50))
    assert fashion.head_config("text").locked and not fashion.head_config("image").locked
    assert fashion.data.exclude == {"label": ["Sandal", "Shirt", "Bag"]}
    with pytest.raises(ConfigError, match="no alignment recipe"):
        preset("mnist", size=10)


def test_every_public_name_resolves() -> None:
    import omnifuse.align as align

    for name in align.__all__:
        assert getattr(align, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        align.nope  # noqa: B018
