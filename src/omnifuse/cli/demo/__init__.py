"""``omnifuse demo``: the main job of omnifuse on its built-in data, from building the datasets to
serving what it trained (``make demo`` runs it). An application of the library that sits in the
command-line layer, kept apart from the library it shows: :func:`run_demo` runs its steps."""

from omnifuse.cli.demo.command import demo
from omnifuse.cli.demo.run import DEMO_SIZES, run_demo

__all__ = ["DEMO_SIZES", "demo", "run_demo"]
