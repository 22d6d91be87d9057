"""``omnifuse info``: versions, optional extras, offline models, system tools and data."""

from __future__ import annotations

from omnifuse.cli.render import checks_table, console
from omnifuse.info import report


def info() -> None:
    """Show versions, which optional extras and offline models are present, and system data."""
    for title, checks in report().items():
        console.print(checks_table(title, checks))
        console.print()
