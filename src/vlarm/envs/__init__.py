"""Gymnasium environments: every registered task as ``vlarm/<task>-v0``.

>>> import gymnasium as gym, vlarm.envs  # doctest: +SKIP
>>> env = gym.make("vlarm/put-block-in-bowl-seen-colors-v0")  # doctest: +SKIP
"""

from __future__ import annotations

import gymnasium as gym

from vlarm.envs.tabletop import TabletopEnv
from vlarm.tasks import list_tasks


def env_id(task: str) -> str:
    """Gymnasium id of a task: ``vlarm/<task>-v0``."""
    return f"vlarm/{task}-v0"


def register_envs() -> None:
    """Register every task with gymnasium (idempotent)."""
    for task in list_tasks():
        if env_id(task) not in gym.registry:
            gym.register(id=env_id(task), entry_point="vlarm.envs.tabletop:TabletopEnv", kwargs={"task": task})


def make_env(task: str, **kwargs) -> TabletopEnv:
    """Build the environment of a task directly (no wrappers). Unknown tasks raise ValueError naming the valid ones."""
    return TabletopEnv(task, **kwargs)


register_envs()

__all__ = ["TabletopEnv", "env_id", "make_env", "register_envs"]
