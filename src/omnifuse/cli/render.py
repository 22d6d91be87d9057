"""Rich renderings shared by the subcommands."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from omnifuse.data.manifest import ManifestIssue
from omnifuse.data.summary import ManifestSummary
from omnifuse.info import Check


def _console(stderr: bool = False) -> Console:
    """A console that keeps tables readable when output goes to a file or CI log (no terminal)."""
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, width=None if probe.is_terminal else 120)


console = _console()
console_err = _console(stderr=True)


def checks_table(title: str, checks: Sequence[Check]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[yellow]·[/]"
        table.add_row(mark, check.name, check.detail)
    return table


def issues_table(issues: Sequence[ManifestIssue], limit: int = 200) -> Table:
    table = Table(title=f"{len(issues)} problem(s)", title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("column")
    table.add_column("reason")
    for issue in issues[:limit]:
        table.add_row(str(issue.line), issue.column or "—", issue.reason)
    if len(issues) > limit:
        table.add_row("…", "", f"{len(issues) - limit} more")
    return table


def summary_table(summaries: Sequence[ManifestSummary]) -> Table:
    table = Table(title="Built-in data", title_justify="left")
    for column in (
        "dataset",
        "task",
        "samples",
        "train/val/test",
        "modalities (present)",
        "labels",
    ):
        table.add_column(column, justify="right" if column == "samples" else "left")
    for s in summaries:
        splits = "/".join(str(s.splits.get(name, 0)) for name in ("train", "val", "test"))
        modalities = ", ".join(f"{col}:{kind} ({n})" for col, (kind, n) in s.modalities.items())
        labels = ", ".join(f"{col} ({n} values)" for col, n in s.labels.items()) or "—"
        skipped = f" [red]({s.skipped} skipped)[/]" if s.skipped else ""
        table.add_row(s.dataset, s.task, f"{s.samples}{skipped}", splits, modalities, labels)
    return table


def examples_table(summaries: Sequence[ManifestSummary]) -> Table:
    table = Table(title="Examples", title_justify="left", show_header=True)
    table.add_column("dataset/task")
    table.add_column("text → label")
    for s in summaries:
        for example in s.examples:
            table.add_row(f"{s.dataset}/{s.task}", example)
    return table
