"""Language-conditioned tabletop tasks (CLIPort/Ravens benchmark) and the task registry.

``make_task(name)`` builds a task by its benchmark name; ``list_tasks()`` lists them. An unknown name raises a
``ValueError`` that lists the valid names.
"""

from __future__ import annotations

from collections.abc import Callable

from vlarm.tasks.base import SUCCESS_THRESHOLD, Action, Goal, Task, TaskError
from vlarm.tasks.put_block_in_bowl import PutBlockInBowl

_REGISTRY: dict[str, Callable[[], Task]] = {
    "put-block-in-bowl-seen-colors": lambda: PutBlockInBowl(name="put-block-in-bowl-seen-colors", unseen=False),
    "put-block-in-bowl-unseen-colors": lambda: PutBlockInBowl(name="put-block-in-bowl-unseen-colors", unseen=True),
}


def list_tasks() -> list[str]:
    """Names of every registered task, sorted."""
    return sorted(_REGISTRY)


def make_task(name: str) -> Task:
    """Build a fresh task by name.

    Raises:
        ValueError: for an unknown name; the message lists the valid names.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(list_tasks())}")
    return _REGISTRY[name]()


__all__ = ["SUCCESS_THRESHOLD", "Action", "Goal", "Task", "TaskError", "PutBlockInBowl", "list_tasks", "make_task"]
