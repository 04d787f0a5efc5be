"""Gymnasium environments: every registered task as ``vlarm/<task>-v0`` (pick-and-place actions) and, for the
families acted on by suction pick-and-place, ``vlarm/<task>-ee-v0`` (closed-loop ``ee_delta`` actions at 10 Hz,
:mod:`vlarm.envs.closed_loop`).

>>> import gymnasium as gym, vlarm.envs  # doctest: +SKIP
>>> env = gym.make("vlarm/put-block-in-bowl-seen-colors-v0")  # doctest: +SKIP
"""

from __future__ import annotations

import gymnasium as gym

from vlarm.envs.closed_loop import EE_DELTA_EXCLUDED, ClosedLoopEnv
from vlarm.envs.tabletop import TabletopEnv
from vlarm.tasks import list_tasks

#: The two action modes (DESIGN.md): one-shot pick and place poses, or closed-loop end-effector deltas.
ACTION_MODES = ("pick_place", "ee_delta")


def env_id(task: str) -> str:
    """Gymnasium id of a task: ``vlarm/<task>-v0``."""
    return f"vlarm/{task}-v0"


def ee_env_id(task: str) -> str:
    """Gymnasium id of a task's closed-loop ``ee_delta`` env: ``vlarm/<task>-ee-v0``."""
    return f"vlarm/{task}-ee-v0"


def ee_delta_tasks() -> list[str]:
    """Registered tasks that have an ``ee_delta`` mode (every family but :data:`EE_DELTA_EXCLUDED`)."""
    return [t for t in list_tasks() if not t.startswith(EE_DELTA_EXCLUDED)]


def register_envs() -> None:
    """Register every task with gymnasium, and its ``ee_delta`` env where it has one (idempotent)."""
    for task in list_tasks():
        if env_id(task) not in gym.registry:
            gym.register(id=env_id(task), entry_point="vlarm.envs.tabletop:TabletopEnv", kwargs={"task": task})
    for task in ee_delta_tasks():
        if ee_env_id(task) not in gym.registry:
            gym.register(id=ee_env_id(task), entry_point="vlarm.envs.closed_loop:ClosedLoopEnv",
                         kwargs={"task": task})


def make_env(task: str, action_mode: str = "pick_place", **kwargs) -> TabletopEnv:
    """Build the environment of a task directly (no wrappers).

    Args:
        task: registered task name.
        action_mode: ``"pick_place"`` (:class:`TabletopEnv`) or ``"ee_delta"`` (:class:`ClosedLoopEnv`).
        **kwargs: constructor arguments of that env class.

    Raises:
        ValueError: unknown task (naming the valid ones), unknown action mode, or a task without that mode.
    """
    if action_mode not in ACTION_MODES:
        raise ValueError(f"unknown action mode {action_mode!r}; valid: {', '.join(ACTION_MODES)}")
    if action_mode == "ee_delta":
        return ClosedLoopEnv(task, **kwargs)
    return TabletopEnv(task, **kwargs)


register_envs()

__all__ = ["ACTION_MODES", "ClosedLoopEnv", "TabletopEnv", "ee_delta_tasks", "ee_env_id", "env_id", "make_env",
           "register_envs"]
