"""Tasks own target encoding, loss and metrics: ``create_task(name, classes, **cfg)``.

Built in: ``classification``, ``multilabel``, ``regression``, ``vqa`` (answer classification
with per-question-type accuracy) and ``matching`` (caption–image matching, binary).
"""

from __future__ import annotations

from omnifuse.tasks.base import Task, create_task, higher_is_better, tasks


def load_builtin_tasks() -> None:
    """Import the built-in task modules (once); lookups in ``tasks`` do it by themselves."""
    tasks.load_builtins()


def list_tasks() -> list[str]:
    load_builtin_tasks()
    return tasks.list()


__all__ = ["Task", "create_task", "higher_is_better", "list_tasks", "load_builtin_tasks", "tasks"]
