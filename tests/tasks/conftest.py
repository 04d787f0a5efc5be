"""Shared fixtures of the task-family tests: one simulator per test module and a free table spot finder."""

import numpy as np
import pytest

from vlarm.sim import Scene, default_cameras


@pytest.fixture(scope="module")
def scene(request):
    """A simulator shared by the tests of one module; cameras at the module's ``CAMERA_SCALE`` (default 0.25 of
    480x640: the tests read heightmaps, not fine detail)."""
    s = Scene(cameras=default_cameras(getattr(request.module, "CAMERA_SCALE", 0.25)))
    yield s
    s.close()


def _free_spot(scene: Scene, clearance: float = 0.08, avoid=()) -> np.ndarray:
    taken = np.array([scene.pose(b)[0][:2] for b in scene.objects] + [np.asarray(xy)[:2] for xy in avoid])
    for x in np.linspace(0.3, 0.7, 9):
        for y in np.linspace(-0.45, 0.45, 19):
            if np.min(np.linalg.norm(taken - [x, y], axis=1)) > clearance:
                return np.array([x, y])
    raise AssertionError("no free spot on the table")


@pytest.fixture
def free_spot():
    """``free_spot(scene, clearance=0.08, avoid=())``: a table (x, y) at least ``clearance`` metres from every
    object of ``scene`` and every point of ``avoid`` (e.g. fixed pegs); AssertionError when the table is full."""
    return _free_spot
