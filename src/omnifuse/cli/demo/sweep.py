"""The fusion sweep of the demo: every fusion strategy on a small av-digits."""

from __future__ import annotations

import os
from pathlib import Path

from omnifuse.cli.render import console

RECIPE = "demo-sweep"
"""Every fusion on a small av-digits, about 70 s on 2 cores: the packaged recipe file."""


def sweep_demo(out: Path, seed: int) -> None:
    """Every fusion strategy on a small av-digits (cached features, one budget), as a table."""
    from omnifuse.cli.sweep import leaderboard_table, print_summary
    from omnifuse.sweep import read_sweep_config, run_sweep

    config = read_sweep_config(
        RECIPE, settings={"out": out, "seed": seed, "workers": min(2, os.cpu_count() or 1)}
    )
    console.print(
        f"[bold]fusion sweep[/]: every fusion on av-digits (size {config.size}, "
        f"{config.epochs} epochs, test voices unseen in training) → {out}"
    )
    result = run_sweep(config)
    console.print(leaderboard_table(result.results, "av-digits fusion sweep (test split)"))
    print_summary(result)
