"""``omnifuse train``: train a fusion model from the shell."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from rich.table import Table

from omnifuse.cli.launch import Nnodes, Nproc, RdzvEndpoint, relaunch
from omnifuse.cli.options import OutputFolder, Overrides, recipe_option, recipe_overrides
from omnifuse.cli.render import console

SCALARS = (
    "accuracy",
    "macro_f1",
    "precision",
    "recall",
    "ece",
    "micro_f1",
    "subset_accuracy",
    "auc",
    "match_f1",
    "mae",
    "rmse",
    "r2",
    "loss",
    "count",
)


def train(
    config: Annotated[str, recipe_option("av-digits-concat")],
    overrides: Overrides = None,
    output: OutputFolder = None,
    nproc: Nproc = 1,
    nnodes: Nnodes = 1,
    rdzv_endpoint: RdzvEndpoint = None,
) -> None:
    """Train a fusion model as the run file says; writes the model folder and prints its metrics.
    With --nproc N, N data-parallel processes share each batch (torchrun)."""
    from omnifuse.train import distributed
    from omnifuse.train.recipe import read_run_config, run

    if relaunch(nproc, nnodes, rdzv_endpoint):
        return
    outcome = run(read_run_config(config, recipe_overrides(overrides, output)))
    if not distributed.is_main():
        return
    for split in ("val", "test"):
        if split in outcome.metrics:
            console.print(metrics_table(outcome.metrics[split], title=f"{split} metrics"))
    result = outcome.result
    console.print(
        f"[green]done[/] {len(result.history)} epoch(s), best {result.metric} "
        f"{result.best_metric:.4f} at epoch {result.best_epoch}"
        f"{' (stopped early)' if result.stopped_early else ''} in {result.seconds:.1f} s "
        f"→ {outcome.folder}",
        soft_wrap=True,
    )


def metrics_table(metrics: Mapping[str, Any], *, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SCALARS:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            table.add_row(key, str(value) if isinstance(value, int) else f"{value:.4f}")
    return table
