"""Option values that several commands read the same way: ``key=value`` settings whose values
are JSON where they parse, and the choice of an encoder per manifest column.

Each parser raises ``typer.BadParameter`` naming the option, so a typo ends as a usage error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer


def json_or_text(text: str) -> Any:
    """A JSON value when ``text`` is one (64, 0.5, 1e-3, true, null, [-10, 5]), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_options(entries: Sequence[str], hint: str) -> dict[str, Any]:
    """``key=value`` entries of the option ``hint`` → a dict, values read by ``json_or_text``."""
    options: dict[str, Any] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {entry!r}", param_hint=hint)
        options[key.strip()] = json_or_text(value.strip())
    return options


def parse_encoder_options(entries: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``COLUMN=NAME`` or ``COLUMN.key=value`` entries → per-column encoder specs."""
    specs: dict[str, dict[str, Any]] = {}
    for entry in entries:
        target, sep, value = entry.partition("=")
        column, dot, key = target.partition(".")
        if not sep or not column:
            raise typer.BadParameter(f"expected COLUMN=NAME or COLUMN.key=value, got {entry!r}")
        specs.setdefault(column, {})[key if dot else "name"] = (
            value if not dot else json_or_text(value)
        )
    return specs


def parse_encoders(text: str) -> dict[str, str]:
    """``col=name,col2=name2`` → {col: name}; a column given twice is an error."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        column, sep, name = part.partition("=")
        if not sep or not column.strip() or not name.strip():
            raise typer.BadParameter(
                f"expected COLUMN=ENCODER, got {part!r}", param_hint="--encoders"
            )
        if column.strip() in mapping:
            raise typer.BadParameter(f"column {column!r} given twice", param_hint="--encoders")
        mapping[column.strip()] = name.strip()
    if not mapping:
        raise typer.BadParameter("map at least one column to an encoder", param_hint="--encoders")
    return mapping


def parse_encoder_config(
    entries: Sequence[str], encoders: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """``NAME.key=value`` entries → per-column configs. NAME is a column (that column only) or an
    encoder name (every column using it)."""
    config: dict[str, dict[str, Any]] = {column: {} for column in encoders}
    for entry in entries:
        target, sep, value = entry.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not name or not key:
            raise typer.BadParameter(
                f"expected NAME.key=value, got {entry!r}", param_hint="--encoder-config"
            )
        columns = [name] if name in encoders else [c for c, e in encoders.items() if e == name]
        if not columns:
            raise typer.BadParameter(
                f"{name!r} is neither a column nor an encoder of --encoders",
                param_hint="--encoder-config",
            )
        for column in columns:
            config[column][key] = json_or_text(value)
    return config


Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting: section.key=value (YAML value); repeatable."),
]
"""The ``--set`` option of every command that reads a config: one override grammar."""


def recipe_option(example: str) -> Any:
    """The ``--config`` option: a packaged recipe name or a YAML/JSON path."""
    return typer.Option(
        "--config", "-c", help=f"A packaged recipe name ({example}) or a YAML/JSON file."
    )


OutputFolder = Annotated[
    Path | None, typer.Option("--output", "-o", help="Model folder (overrides 'output').")
]
"""The ``--output`` option of the training commands."""


def recipe_overrides(overrides: Sequence[str] | None, output: Path | None) -> list[str]:
    """The ``--set`` entries, with ``--output`` as the last one when given."""
    return [*(overrides or []), *([f"output={output}"] if output is not None else [])]


EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where the batch work runs: local (this machine) or ray (a Ray cluster through Ray "
        "Data; needs the ray extra).",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="With --engine ray: the cluster to join (host:port, or auto); default RAY_ADDRESS, "
        "else a Ray started on this machine for this run.",
    ),
]
WorkersOpt = Annotated[
    int, typer.Option(min=1, help="Workers side by side: local processes, or Ray actors.")
]
"""The ``--engine``, ``--address`` and ``--workers`` options of the commands that run batch
work."""
