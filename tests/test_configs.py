"""Every packaged recipe names the command that runs it and parses for that command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omnifuse.config import recipes_dir

CONFIGS = sorted(recipes_dir().glob("*.yaml"))


def _readers() -> dict[str, Callable[[Path], Any]]:
    from omnifuse.align.config import read_align_config
    from omnifuse.generate import read_generate_config
    from omnifuse.projector import read_projector_config
    from omnifuse.sweep import read_sweep_config
    from omnifuse.train.recipe import read_run_config

    return {
        "omnifuse train --config": read_run_config,
        "omnifuse align --config": lambda path: read_align_config(path, []),
        "omnifuse projector train --config": lambda path: read_projector_config(path, []),
        "omnifuse sweep --config": lambda path: read_sweep_config(path),
        "omnifuse generate train --config": lambda path: read_generate_config(path),
        "omnifuse consistency train --config": lambda path: read_align_config(path, []),
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_recipe_parses_for_its_command(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    commands = [(usage, read) for usage, read in _readers().items() if usage in text]
    assert len(commands) == 1, f"{path.name} should name exactly one omnifuse command"
    usage, read = commands[0]
    assert read(path) is not None, f"{path.name} did not parse as a {usage!r} recipe"
