"""Tasks own target encoding, loss and metrics: ``create_task(name, classes, **cfg)``.

Built in: ``classification``, ``multilabel``, ``regression``, ``vqa`` (answer classification
with per-question-type accuracy) and ``matching`` (caption–image matching, binary).
"""

from __future__ import annotations

import importlib

from omnifuse.tasks.base import Task, create_task, higher_is_better, tasks

BUILTIN_MODULES = (
    "omnifuse.tasks.classification",
    "omnifuse.tasks.regression",
    "omnifuse.tasks.matching",
)

_loaded = False


def load_builtin_tasks() -> None:
    """Import the task modules so their ``@tasks.register`` decorators run (once)."""
    global _loaded
    if _loaded:
        return
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    _loaded = True


def list_tasks() -> list[str]:
    load_builtin_tasks()
    return tasks.list()


__all__ = ["Task", "create_task", "higher_is_better", "list_tasks", "load_builtin_tasks", "tasks"]
