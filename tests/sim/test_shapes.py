"""Kit shapes built in code (vlarm.sim.shapes): outlines, symmetries, distinct masks, bodies and holes."""

import math

import numpy as np
import pybullet as p
import pytest
from scipy.ndimage import binary_dilation

from vlarm.sim import Scene, default_cameras
from vlarm.sim.shapes import (
    MAX_PARTS,
    N_SHAPES,
    SHAPE_HEIGHT,
    SHAPE_SIZE,
    SYMMETRY,
    create_hole,
    create_shape,
    footprint,
    footprint_radius,
    shape_parts,
    shape_points,
)
from vlarm.sim.transforms import yaw_to_quat
from vlarm.tasks.attributes import KIT_SHAPES

PIXEL = 0.001
SHAPES = range(N_SHAPES)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def rotated():
    """shape -> masks rotated by 0, 5, ..., 355 degrees."""
    return {i: [footprint(i, SHAPE_SIZE, PIXEL, math.radians(a)) for a in range(0, 360, 5)] for i in SHAPES}


def test_one_builder_and_symmetry_per_named_shape():
    assert N_SHAPES == len(KIT_SHAPES) == len(SYMMETRY) == 20


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_fits_its_circle_and_pybullet(shape):
    radius = footprint_radius(shape)
    assert 0.3 * SHAPE_SIZE < radius <= SHAPE_SIZE / 2 + 1e-9
    assert footprint_radius(shape, 0.04) == pytest.approx(radius / 2)
    assert 1 <= len(shape_parts(shape)) <= MAX_PARTS       # PyBullet crashes on more visual boxes in one body
    mask = footprint(shape)
    assert 0.15 < mask.mean() < 0.8                          # a flat piece, neither a sliver nor the whole square


@pytest.mark.parametrize("shape", SHAPES)
def test_symmetry_table_matches_the_outline(shape):
    base = footprint(shape, SHAPE_SIZE, PIXEL)
    symmetry = SYMMETRY[shape]
    if symmetry == 0:                                        # circle, ring: any rotation
        for angle in (0.3, 1.1, 2.0):
            assert _iou(base, footprint(shape, SHAPE_SIZE, PIXEL, angle)) > 0.93
        return
    if symmetry < 2 * np.pi:
        assert _iou(base, footprint(shape, SHAPE_SIZE, PIXEL, symmetry)) > 0.97
    # a smaller rotation than the symmetry is visible (so the pose metric's yaw check means something)
    assert _iou(base, footprint(shape, SHAPE_SIZE, PIXEL, min(symmetry / 2, np.pi / 2))) < 0.93


def test_distinct_shapes_have_distinct_masks_at_any_rotation(rotated):
    worst = (0.0, None)
    for i in SHAPES:
        for j in SHAPES:
            if i < j:
                iou = max(_iou(rotated[i][0], m) for m in rotated[j])
                worst = max(worst, (iou, (KIT_SHAPES[i], KIT_SHAPES[j])))
    assert worst[0] < 0.8, worst


def test_points_fill_the_footprint():
    pts = shape_points(14, SHAPE_SIZE, SHAPE_HEIGHT, 0.005)
    assert pts.dtype == np.float32 and pts.shape[1] == 3
    assert np.allclose(np.unique(pts[:, 2]), [-SHAPE_HEIGHT / 2, SHAPE_HEIGHT / 2])
    mask = footprint(14, SHAPE_SIZE, 0.005)
    assert len(pts) == 2 * mask.sum()
    assert np.linalg.norm(pts[:, :2], axis=1).max() <= footprint_radius(14)


@pytest.mark.parametrize("bad", [20, -1, 2.0, "star", True])
def test_unknown_shape_is_refused(bad):
    with pytest.raises(ValueError, match="valid shape ids: 0-19"):
        shape_parts(bad)


def test_bad_lengths_are_refused():
    with pytest.raises(ValueError, match="positive diameter"):
        shape_parts(3, 0.0)
    with pytest.raises(ValueError, match="pixel"):
        footprint(3, SHAPE_SIZE, 0.0)


@pytest.fixture(scope="module")
def scene():
    s = Scene(cameras=default_cameras(1.0))
    yield s
    s.close()


def test_body_rests_flat_and_renders_its_outline(scene):
    scene.reset()
    shape, yaw, xy = 0, 0.7, np.array([0.5, 0.1])
    made = create_shape(scene.client, shape, (np.array([*xy, 0.0]), yaw_to_quat(yaw)), (1.0, 0.3, 0.3))
    hole = create_hole(scene.client, shape, (np.array([0.5, -0.2, 0.0]), yaw_to_quat(yaw)))
    scene.add_object(made.body, "letter R", "red", (SHAPE_SIZE, SHAPE_SIZE, SHAPE_HEIGHT))
    scene.settle()
    pos, quat = scene.pose(made.body)
    assert pos[2] == pytest.approx(SHAPE_HEIGHT / 2, abs=1e-3) and np.allclose(pos[:2], xy, atol=1e-3)
    assert made.symmetry == SYMMETRY[shape] and made.radius == footprint_radius(shape)
    obs = scene.observe()
    seen = obs.segmentation == made.body
    # the rasterised outline on the heightmap grid (rows follow y, columns x)
    cols, rows = np.meshgrid(np.arange(seen.shape[1]), np.arange(seen.shape[0]))
    x = scene.bounds[0, 0] + (cols + 0.5) * scene.pixel_size - pos[0]
    y = scene.bounds[1, 0] + (rows + 0.5) * scene.pixel_size - pos[1]
    c, s = math.cos(-yaw), math.sin(-yaw)
    u, v = c * x - s * y, s * x + c * y
    n = int(round(SHAPE_SIZE / PIXEL))
    iu, iv = np.floor(u / PIXEL + n / 2).astype(int), np.floor(v / PIXEL + n / 2).astype(int)
    inside = (iu >= 0) & (iu < n) & (iv >= 0) & (iv < n)
    expected = np.zeros_like(seen)
    expected[inside] = footprint(shape, SHAPE_SIZE, PIXEL)[iv[inside], iu[inside]]
    # every outline pixel is seen, and what is seen lies within two pixels of the outline (the sides of the slab)
    assert (seen & expected).sum() > 0.95 * expected.sum()
    assert (seen & binary_dilation(expected, iterations=2)).sum() > 0.97 * seen.sum()
    assert abs(float(np.median(obs.heightmap[seen])) - SHAPE_HEIGHT) < 0.004
    # the hole is seen, dark and flat, and has no collision shape (nothing rests on it)
    hole_px = obs.segmentation == hole
    assert hole_px.sum() > 0.5 * expected.sum() and obs.colormap[hole_px].mean() < 80
    assert p.getCollisionShapeData(hole, -1, physicsClientId=scene.client) == ()
