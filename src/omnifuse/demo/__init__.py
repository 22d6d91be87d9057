"""The demo: the main job of omnifuse on its built-in data, from building the datasets to
serving what it trained. An application of the library, kept apart from it; ``omnifuse demo``
(and ``make demo``) runs :func:`run_demo`."""

from omnifuse.demo.run import DEMO_SIZES, run_demo

__all__ = ["DEMO_SIZES", "run_demo"]
