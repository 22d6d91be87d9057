"""The built-in ``world`` dataset: synthetic scenes of shapes for every multimodal task.

Importing this package registers the ``world`` builder in :data:`omnifuse.data.builders.datasets`.
See :mod:`omnifuse.data.world.builder` for the files it writes.
"""

from omnifuse.data.world.builder import build_world

__all__ = ["build_world"]
