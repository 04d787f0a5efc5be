"""The named-object set: names and splits, size, resting pose, zone points, top-down distinctness, suction picks."""

import itertools

import numpy as np
import pybullet as p
import pytest

from vlarm.sim import Scene, default_cameras, pick_place, xyz_to_pixel
from vlarm.sim.objects import MAX_FOOTPRINT, OBJECT_NAMES, OBJECTS, create_object, footprint, object_points
from vlarm.sim.transforms import yaw_to_quat
from vlarm.tasks.attributes import EVAL_OBJECTS, TRAIN_OBJECTS, values_for

#: Objects whose pick point sits far from the body origin, or whose top is thin or round: the hardest suction picks.
HARD_PICKS = ("toy bunny", "teddy bear", "bottle", "pencil", "key", "fork", "tennis ball", "donut")


@pytest.fixture(scope="module")
def scene():
    s = Scene(cameras=default_cameras(0.5))
    yield s
    s.close()


def test_names_and_splits_match_clipports_structure():
    assert len(OBJECT_NAMES) == len(set(OBJECT_NAMES)) == 56
    assert len(TRAIN_OBJECTS) == 37 and len(EVAL_OBJECTS) == 19 and not set(TRAIN_OBJECTS) & set(EVAL_OBJECTS)
    assert set(TRAIN_OBJECTS) | set(EVAL_OBJECTS) == set(OBJECT_NAMES)
    assert OBJECT_NAMES == TRAIN_OBJECTS + EVAL_OBJECTS
    assert set(values_for("object", "test", "full")) == set(OBJECT_NAMES)
    assert values_for("object", "test", "unseen") == EVAL_OBJECTS
    assert values_for("object", "train", "unseen") == TRAIN_OBJECTS
    with pytest.raises(ValueError, match="known objects: mug"):
        create_object(0, "spork", (0, 0, 0))


def test_every_object_fits_rests_upright_and_its_points_fill_it(scene):
    scene.reset()
    bodies = {}
    for i, name in enumerate(OBJECT_NAMES):
        x, y = 0.3 + 0.15 * (i % 4), -1.5 + 0.15 * (i // 4)   # a 4 x 14 grid, off the workspace
        bodies[name] = create_object(scene.client, name, (x, y, 0.0))
    aabbs = {name: np.array(p.getAABB(b, physicsClientId=scene.client)) for name, b in bodies.items()}
    scene.step(240)
    for name, body in bodies.items():
        pos, quat = scene.pose(body)
        start = np.array([0.3 + 0.15 * (OBJECT_NAMES.index(name) % 4), -1.5 + 0.15 * (OBJECT_NAMES.index(name) // 4)])
        tilt = np.degrees(np.abs(p.getEulerFromQuaternion(quat, physicsClientId=scene.client)[:2]))
        assert tilt.max() < 3 and np.linalg.norm(pos[:2] - start) < 0.005 and abs(pos[2]) < 0.005, (name, pos, tilt)
        pts = object_points(name)
        size = pts.max(0) - pts.min(0)
        assert size[0] <= MAX_FOOTPRINT and size[1] <= MAX_FOOTPRINT and footprint(name) == pytest.approx(size[:2])
        # low enough that a suction grasp anywhere on top stays within the primitive's 10 cm carry check
        assert size[2] <= 0.09 and np.linalg.norm(pts, axis=1).max() < 0.095, (name, size)
        # the points lie in the body and span it (PyBullet's AABB adds a collision margin and bounds rotated parts
        # by their rotated boxes, so it is a little larger)
        lo, hi = aabbs[name] - np.array([*start, 0.0])
        assert np.all(pts >= lo - 0.001) and np.all(pts <= hi + 0.001), name
        assert np.allclose(pts.min(0), lo, atol=0.015) and np.allclose(pts.max(0), hi, atol=0.015), name


def _top_down_views(scene) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (48 x 48 bool mask, mean RGB) of the object alone at yaw 0, from the fused top-down maps."""
    views = {}
    for batch in (OBJECT_NAMES[:21], OBJECT_NAMES[21:42], OBJECT_NAMES[42:]):
        scene.reset()
        centres = {}
        for i, name in enumerate(batch):
            xy = np.array([0.34 + 0.16 * (i % 3), -0.42 + 0.14 * (i // 3)])
            centres[name] = (xy, create_object(scene.client, name, (*xy, 0.0)))
        obs = scene.observe()
        for name, (xy, body) in centres.items():
            r, c = xyz_to_pixel(np.array([*xy, 0.0]), scene.bounds, scene.pixel_size)
            window = (slice(r - 24, r + 24), slice(c - 24, c + 24))
            mask = obs.segmentation[window] == body
            views[name] = (mask, obs.colormap[window][mask].reshape(-1, 3).mean(0))
    return views


def test_every_pair_differs_in_top_down_mask_or_colour(scene):
    views = _top_down_views(scene)
    for name, (mask, _) in views.items():
        assert mask.sum() >= 20, name                       # visible from above
    alike = []
    for a, b in itertools.combinations(OBJECT_NAMES, 2):
        (mask_a, rgb_a), (mask_b, rgb_b) = views[a], views[b]
        iou = (mask_a & mask_b).sum() / (mask_a | mask_b).sum()
        colour = float(np.linalg.norm(rgb_a - rgb_b))
        if iou > 0.8 and colour < 30:
            alike.append((a, b, round(float(iou), 2), round(colour, 1)))
    assert not alike, alike


@pytest.mark.parametrize("name", HARD_PICKS)
def test_suction_picks_the_object_from_above_and_places_it(scene, name):
    scene.reset()
    start, goal = np.array([0.45, -0.2, 0.0]), np.array([0.55, 0.2, 0.0])
    body = create_object(scene.client, name, start, yaw=0.3)
    scene.add_object(body, name, OBJECTS[name].color, (0.1, 0.1, 0.1))
    scene.settle()
    top = float(p.getAABB(body, physicsClientId=scene.client)[1][2])
    offset = np.array([0.01, 0.005, 0.0])                   # slightly off centre, as a sampled pick point is
    result = pick_place(scene, (start + offset + [0, 0, top], yaw_to_quat(0.0)),
                        (goal + offset + [0, 0, top], yaw_to_quat(0.0)))
    assert result.success and result.grasped_body == body, result
    pos = scene.pose(body)[0]
    assert np.linalg.norm(pos[:2] - goal[:2]) < 0.015, (name, pos)
