"""Language-conditioned tabletop tasks (CLIPort/Ravens benchmark) and the task registry.

Each task family lives in its own module, which exports ``FAMILY`` (e.g. ``"put-block-in-bowl"``), ``EXAMPLE`` (an
instruction its grammar grounds) and ``VARIANTS`` (task name -> factory). ``make_task(name)`` builds a task by its
benchmark name; ``list_tasks()`` and ``list_families()`` list them. An unknown name raises a ``ValueError`` that
lists the valid names. ``vlarm.tasks.routing.route`` finds the task whose grammar grounds a free-form instruction.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from types import ModuleType

from vlarm.tasks import (
    align_rope,
    assembling_kits,
    packing_boxes_pairs,
    packing_objects_group,
    packing_objects_seq,
    packing_shapes,
    put_block_in_bowl,
    separating_piles,
    stack_block_pyramid,
    towers_of_hanoi,
)
from vlarm.tasks.base import SUCCESS_THRESHOLD, Action, Goal, Task, TaskError
from vlarm.tasks.put_block_in_bowl import PutBlockInBowl

#: The family modules, in CLIPort's Table-1 order where it exists. A new family adds its module here.
FAMILY_MODULES: tuple[ModuleType, ...] = (
    align_rope,
    assembling_kits,
    packing_boxes_pairs,
    packing_shapes,
    packing_objects_seq,
    packing_objects_group,
    put_block_in_bowl,
    stack_block_pyramid,
    separating_piles,
    towers_of_hanoi,
)

_REGISTRY: dict[str, Callable[[], Task]] = {}
_FAMILY_OF: dict[str, str] = {}
for _module in FAMILY_MODULES:
    for _name, _factory in _module.VARIANTS.items():
        _REGISTRY[_name], _FAMILY_OF[_name] = _factory, _module.FAMILY
# Tasks outside the CLIPort families (never routed, not in the benchmark grid): SayCan's tabletop (issue 9).
from vlarm.tasks import saycan_tabletop  # noqa: E402

for _name, _factory in saycan_tabletop.VARIANTS.items():
    _REGISTRY[_name], _FAMILY_OF[_name] = _factory, saycan_tabletop.FAMILY


def list_tasks() -> list[str]:
    """Names of every registered task, sorted."""
    return sorted(_REGISTRY)


def list_families() -> dict[str, list[str]]:
    """Family name -> its task variants (sorted), in :data:`FAMILY_MODULES` order."""
    return {m.FAMILY: sorted(n for n in _REGISTRY if _FAMILY_OF[n] == m.FAMILY) for m in FAMILY_MODULES}


def task_family(name: str) -> str:
    """The family of a registered task, e.g. ``put-block-in-bowl`` for ``put-block-in-bowl-seen-colors``.

    Raises:
        ValueError: for an unknown task (as :func:`make_task`: the message lists the valid names).
    """
    if name not in _FAMILY_OF:
        make_task(name)
    return _FAMILY_OF[name]


def family_example(family: str) -> str:
    """An instruction of ``family`` that its grammar grounds (for help and error messages).

    Raises:
        ValueError: for an unknown family (the message lists the families).
    """
    for module in FAMILY_MODULES:
        if module.FAMILY == family:
            return module.EXAMPLE
    raise ValueError(f"unknown task family {family!r}; families: {', '.join(m.FAMILY for m in FAMILY_MODULES)}")


def make_task(name: str) -> Task:
    """Build a fresh task by name.

    Raises:
        ValueError: for an unknown name; the message lists the valid names, and says when the name is a family
            (listing its tasks) or a gymnasium id, or suggests close names for a typo.
    """
    if name not in _REGISTRY:
        families = list_families()
        if name in families:
            raise ValueError(f"{name!r} is a task family; pass one of its tasks: {', '.join(families[name])}")
        bare = name.removeprefix("vlarm/").removesuffix("-v0")
        if bare in _REGISTRY:
            raise ValueError(f"{name!r} is the gymnasium id of task {bare!r}; pass the task name {bare!r}")
        close = difflib.get_close_matches(name, list_tasks(), n=3, cutoff=0.75)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ValueError(f"unknown task {name!r}; {hint}valid tasks: {', '.join(list_tasks())}")
    task = _REGISTRY[name]()
    task.family = _FAMILY_OF[name]
    return task


__all__ = ["SUCCESS_THRESHOLD", "Action", "Goal", "Task", "TaskError", "PutBlockInBowl", "FAMILY_MODULES",
           "family_example", "list_families", "list_tasks", "make_task", "task_family"]
