"""The ``omnifuse`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import sys

import typer

from omnifuse.cli import align as align_commands
from omnifuse.cli import ask as ask_commands
from omnifuse.cli import caption as caption_commands
from omnifuse.cli import data, demo, encode, info, predict, sweep
from omnifuse.cli import eval as eval_command
from omnifuse.cli import index as index_commands
from omnifuse.cli import serve as serve_command
from omnifuse.cli import train as train_commands
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
app.add_typer(align_commands.app, name="align")
app.add_typer(index_commands.app, name="index")
app.command("train")(train_commands.train)
app.command("eval")(eval_command.evaluate)
app.command("predict")(predict.predict)
app.command("sweep")(sweep.sweep)
app.command("serve")(serve_command.serve)
app.command("transcribe")(ask_commands.transcribe)
app.command("ask")(ask_commands.ask)
app.command("chat")(ask_commands.chat)
app.command("speak")(ask_commands.speak)
app.command("caption")(caption_commands.caption)
app.add_typer(caption_commands.app, name="projector")


def main() -> None:
    """Run the CLI; omnifuse's own errors print as one readable line instead of a traceback."""
    try:
        app()
    except OmnifuseError as err:
        console_err.print(f"[bold red]error:[/] {type(err).__name__}: {err}")
        sys.exit(2)
