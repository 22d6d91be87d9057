"""The ``omnifuse`` command: one entry point, a subcommand per job, each in a module of its name."""

from __future__ import annotations

import sys

import typer

from omnifuse.cli import (
    align,
    ask,
    caption,
    chat,
    consistency,
    data,
    demo,
    encode,
    export,
    generate,
    index,
    info,
    predict,
    projector,
    serve,
    speak,
    sweep,
    train,
    transcribe,
    tune,
)
from omnifuse.cli import eval as evaluate
from omnifuse.cli.render import console_err
from omnifuse.errors import OmnifuseError

app = typer.Typer(
    name="omnifuse",
    help="Encode, fuse, align, search and ask across text, images, audio and video — offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("info")(info.info)
app.command("demo")(demo.demo)
app.command("encode")(encode.encode)
app.add_typer(data.app, name="data")
app.add_typer(align.app, name="align")
app.add_typer(index.app, name="index")
app.command("train")(train.train)
app.command("eval")(evaluate.evaluate)
app.command("predict")(predict.predict)
app.command("export")(export.export)
app.command("quantize")(export.quantize)
app.command("sweep")(sweep.sweep)
app.command("tune")(tune.tune)
app.command("serve")(serve.serve)
app.command("transcribe")(transcribe.transcribe)
app.command("ask")(ask.ask)
app.command("chat")(chat.chat)
app.command("speak")(speak.speak)
app.command("caption")(caption.caption)
app.add_typer(projector.app, name="projector")
app.add_typer(consistency.app, name="consistency")
app.add_typer(generate.app, name="generate")


def main() -> None:
    """Run the CLI; omnifuse's own errors print as one readable line instead of a traceback."""
    try:
        app()
    except OmnifuseError as err:
        console_err.print(f"[bold red]error:[/] {type(err).__name__}: {err}")
        sys.exit(2)
