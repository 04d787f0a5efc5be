import numpy as np
import pytest

from vlarm.sim import Scene, default_cameras, pick_place, xyz_to_pixel
from vlarm.sim.transforms import yaw_to_quat

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


@pytest.fixture(scope="module")
def scene():
    s = Scene(cameras=default_cameras(0.5))
    yield s
    s.close()


def _block_scene(scene, xy=(0.5, 0.2)):
    scene.reset()
    block = scene.add_block((np.array([*xy, 0.0]), yaw_to_quat(0.4)), (1.0, 0.0, 0.0), "red")
    scene.settle()
    return block


def test_heightmap_sees_block_at_its_height(scene):
    block = _block_scene(scene)
    obs = scene.observe()
    r, c = xyz_to_pixel(scene.pose(block)[0])
    assert obs.heightmap.shape == (320, 160) and obs.colormap.shape == (320, 160, 3)
    assert abs(obs.heightmap[r, c] - 0.04) < 0.004
    assert obs.segmentation[r, c] == block
    assert obs.colormap[r, c, 0] > 150 and obs.colormap[r, c, 1] < 80   # red on top
    assert abs(np.median(obs.heightmap[obs.segmentation == scene.workspace])) < 0.003  # table at z = 0


def test_pick_place_moves_block(scene):
    block = _block_scene(scene)
    start = scene.pose(block)[0]
    target = np.array([0.6, -0.3, 0.0])
    result = pick_place(scene, (start + [0, 0, 0.02], IDENTITY), (target + [0, 0, 0.02], IDENTITY))
    assert result.success and result.failure is None and result.grasped_body == block
    assert np.linalg.norm(scene.pose(block)[0][:2] - target[:2]) < 0.01


def test_pick_on_empty_table_reports_nothing_grasped(scene):
    block = _block_scene(scene)
    result = pick_place(scene, (np.array([0.3, -0.4, 0.0]), IDENTITY), (np.array([0.6, 0.0, 0.0]), IDENTITY))
    assert not result.success and result.failure == "nothing_grasped"
    assert np.linalg.norm(scene.pose(block)[0][:2] - [0.5, 0.2]) < 0.01


def test_unreachable_pose_reports_ik_failure(scene):
    _block_scene(scene)
    result = pick_place(scene, (np.array([3.0, 0.0, 0.0]), IDENTITY), (np.array([0.6, 0.0, 0.0]), IDENTITY))
    assert not result.success and result.failure == "ik_failure"


def test_compound_bodies_refuse_more_parts_than_pybullet_survives():
    import pybullet as p

    from vlarm.sim.assets import MAX_COMPOUND_PARTS, create_compound

    client = p.connect(p.DIRECT)
    try:
        part = ((0, 0, 0.01), (0.01, 0.01, 0.01), 0.0, (1, 0, 0))
        assert create_compound(client, (0.5, 0, 0), (0, 0, 0, 1), [part] * MAX_COMPOUND_PARTS) >= 0
        with pytest.raises(ValueError, match="at most 16 parts"):
            create_compound(client, (0.5, 0, 0), (0, 0, 0, 1), [part] * (MAX_COMPOUND_PARTS + 1))
    finally:
        p.disconnect(client)
