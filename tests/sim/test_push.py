"""The push primitive (Ravens ``push``): a blade swept along a line moves what lies on it and reports failures."""

import numpy as np
import pybullet as p
import pytest

from vlarm.sim import Scene, default_cameras, push
from vlarm.sim.primitives import BLADE_CLEARANCE, BLADE_SIZE

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])
SMALL = 0.02   # a block lower than the blade, so that the blade pushes its whole face (a tall one may tip over)


@pytest.fixture(scope="module")
def scene():
    s = Scene(cameras=default_cameras(0.25))
    yield s
    s.close()


def _pose(x, y):
    return np.array([x, y, 0.0]), IDENTITY


def test_push_moves_a_block_along_the_line_and_leaves_others(scene):
    scene.reset()
    on_line = scene.add_block(_pose(0.5, 0.05), (1, 0, 0), "red", size=SMALL)
    aside = scene.add_block(_pose(0.5, -0.2), (0, 1, 0), "green", size=SMALL)
    scene.settle()
    n_bodies = p.getNumBodies(physicsClientId=scene.client)
    aside_before = scene.pose(aside)[0]
    result = push(scene, _pose(0.5, 0.12), _pose(0.5, -0.08))
    assert result.success and result.failure is None and result.grasped_body is None, result
    assert result.sim_steps > 0
    x, y, z = scene.pose(on_line)[0]
    # The block ends just ahead of the blade's final position, on the push line, resting on the table.
    front = -0.08 - BLADE_SIZE[0] / 2 - SMALL / 2
    assert front - 0.01 < y < front + 0.005, y
    assert abs(x - 0.5) < 0.02 and abs(z - SMALL / 2) < 0.003
    assert np.linalg.norm(scene.pose(aside)[0] - aside_before) < 1e-3
    assert p.getNumBodies(physicsClientId=scene.client) == n_bodies      # the blade is gone again
    assert np.linalg.norm(scene.arm.joint_positions() - scene.arm.home_joints) < 0.05


def test_blade_sweeps_just_above_the_table(scene):
    scene.reset()
    scene.add_block(_pose(0.45, 0.0), (1, 0, 0), "red")
    tips = []
    scene.frame_callback, scene.frame_every = (lambda s: tips.append(s.arm.tip_pose()[0].copy())), 4
    try:
        assert push(scene, _pose(0.55, 0.0), _pose(0.35, 0.0)).success
    finally:
        scene.frame_callback, scene.frame_every = None, 24
    tips = np.array(tips)
    sweep = tips[(tips[:, 0] < 0.52) & (tips[:, 0] > 0.38) & (tips[:, 2] < 0.1)]
    assert len(sweep) > 10
    # The tip carries the blade (hanging below it) at the clearance height; the arm's tool offset is corrected.
    assert np.allclose(sweep[:, 2], BLADE_CLEARANCE + BLADE_SIZE[2], atol=0.003), sweep[:, 2]
    assert np.allclose(sweep[:, 1], 0.0, atol=0.003)


def test_too_short_push_is_refused_without_moving(scene):
    scene.reset()
    block = scene.add_block(_pose(0.5, 0.0), (1, 0, 0), "red")
    before = scene.pose(block)[0]
    result = push(scene, _pose(0.5, 0.0), _pose(0.505, 0.0))
    assert not result.success and result.failure == "push_too_short" and result.sim_steps == 0
    assert "shorter than" in result.message
    assert np.allclose(scene.pose(block)[0], before)


def test_push_through_empty_table_reports_nothing_pushed(scene):
    scene.reset()
    block = scene.add_block(_pose(0.7, 0.4), (1, 0, 0), "red")
    result = push(scene, _pose(0.4, -0.1), _pose(0.4, -0.3))
    assert not result.success and result.failure == "nothing_pushed" and "no object moved" in result.message
    assert np.linalg.norm(scene.pose(block)[0][:2] - [0.7, 0.4]) < 1e-3


def test_unreachable_push_reports_ik_failure_and_goes_home(scene):
    scene.reset()
    n_bodies = p.getNumBodies(physicsClientId=scene.client)
    result = push(scene, _pose(2.5, 0.0), _pose(2.5, 0.3))
    assert not result.success and result.failure == "ik_failure"
    assert p.getNumBodies(physicsClientId=scene.client) == n_bodies
    assert np.linalg.norm(scene.arm.joint_positions() - scene.arm.home_joints) < 0.05
