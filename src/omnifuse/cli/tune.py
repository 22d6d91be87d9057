"""``omnifuse tune``: search fusion strategies and their settings with Optuna."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from omnifuse.cli.options import AddressOpt, EngineOpt, parse_encoder_options, parse_options
from omnifuse.cli.render import console
from omnifuse.cli.sweep import parse_names


def tune(
    data: Annotated[
        str,
        typer.Option(help="Built-in data (av-digits, world-sensors, ...) or a manifest/folder."),
    ] = "av-digits",
    trials: Annotated[
        int, typer.Option(min=1, help="Finished trials the study should reach (all processes).")
    ] = 20,
    objectives: Annotated[
        str,
        typer.Option(help="Comma-separated: accuracy, latency, params (several: a Pareto front)."),
    ] = "accuracy",
    storage: Annotated[
        str | None,
        typer.Option(
            help="Journal file path or database URL shared by every process of the study "
            "(default: OUT/study.journal)."
        ),
    ] = None,
    study: Annotated[str, typer.Option(help="Study name inside the storage.")] = "omnifuse-tune",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for trials and reports.")] = Path(
        "tune-out"
    ),
    fusions: Annotated[str, typer.Option(help="'all' or the fusions to choose among.")] = "all",
    epochs: Annotated[str, typer.Option(help="Range of epochs a trial may train: LOW..HIGH.")] = (
        "5..30"
    ),
    budget_epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Stop once the finished trials trained this many epochs."),
    ] = None,
    prune_after: Annotated[
        int, typer.Option(min=0, help="Completed trials before pruning starts (0: never prune).")
    ] = 4,
    target: Annotated[str | None, typer.Option(help="The label column.")] = None,
    size: Annotated[int | None, typer.Option(min=1, help="Dataset size.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data, the models and the sampler.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Training batch size.")] = 64,
    workers: Annotated[
        int, typer.Option(min=1, help="Trial processes, or Ray actors (one torch thread each).")
    ] = 1,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    plots: Annotated[bool, typer.Option(help="Write the Pareto or history plot.")] = True,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Feature cache folder (default: in --out).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Dataset folder (default: in --out).")] = (
        None
    ),
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="Dataset builder option key=value; repeatable."),
    ] = None,
    encoder: Annotated[
        list[str] | None,
        typer.Option("--encoder", help="COLUMN=NAME or COLUMN.key=value; repeatable."),
    ] = None,
) -> None:
    """Search the fusion strategy, its size and dropout, the learning rate, weight decay,
    modality dropout and epochs; prune hopeless trials; write a leaderboard, a plot and the best
    trial's model folder (OUT/best). Run it again, or from other processes on the same
    --storage, to add trials to the same study; a killed run resumes where it stopped."""
    from omnifuse.engines import create_engine
    from omnifuse.errors import MissingDependencyError
    from omnifuse.sweep import read_sweep_config

    try:
        from omnifuse.tune import SearchSpace, TuneConfig, fusion_choices, run_tune
    except ModuleNotFoundError as err:
        if err.name != "optuna":
            raise
        raise MissingDependencyError("optuna", extra="tune") from None
    from omnifuse.tune.space import parse_range

    base = read_sweep_config(
        None,
        [],
        {
            "data": data,
            "target": target,
            "out": out,
            "size": size,
            "seed": seed,
            "data_dir": data_dir,
            "cache_dir": cache,
            "builder_options": parse_options(option or [], "--option"),
            "encoders": parse_encoder_options(encoder or []),
            "batch_size": batch_size,
            "progress": False,
        },
    )
    low, high = parse_range(epochs, int)
    space = SearchSpace(
        fusions=fusion_choices(parse_names(fusions) or ["all"]), epochs=(int(low), int(high))
    )
    config = TuneConfig(
        base=base,
        space=space,
        trials=trials,
        objectives=tuple(parse_names(objectives)),
        storage=storage,
        study=study,
        budget_epochs=budget_epochs,
        prune_after=prune_after,
        workers=workers,
        plots=plots,
    )
    runner = None
    if engine != "local" or address is not None:
        runner = create_engine(engine, address=address, workers=workers)
    try:
        result = run_tune(config, engine=runner)
    finally:
        if runner is not None:
            runner.close()
    console.print(result.paths["markdown"].read_text(encoding="utf-8"))
    console.print(
        f"ran {len(result.ran)} trial(s) here; wrote "
        + ", ".join(str(p) for p in result.paths.values())
    )
