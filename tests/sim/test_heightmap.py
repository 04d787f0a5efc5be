import numpy as np
import pytest

from vlarm.sim.heightmap import (
    PIXEL_SIZE,
    WORKSPACE_BOUNDS,
    fuse_heightmap,
    heightmap_shape,
    pixel_to_xyz,
    xyz_to_pixel,
)


def test_clipport_heightmap_shape():
    assert heightmap_shape() == (320, 160)


def test_pixel_world_round_trip_every_pixel():
    h, w = heightmap_shape()
    pix = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 2)
    xyz = pixel_to_xyz(pix)
    assert np.array_equal(xyz_to_pixel(xyz), pix)
    # Pixel centres lie half a pixel inside the bounds.
    assert np.isclose(xyz[:, 0].min(), WORKSPACE_BOUNDS[0, 0] + PIXEL_SIZE / 2)
    assert np.isclose(xyz[:, 1].max(), WORKSPACE_BOUNDS[1, 1] - PIXEL_SIZE / 2)


def test_hand_checked_pixel():
    # x = 0.25 + (10 + 0.5) * 0.003125, y = -0.5 + (20 + 0.5) * 0.003125
    xyz = pixel_to_xyz(np.array([20, 10]))
    assert np.allclose(xyz, [0.28281250, -0.43593750, 0.0])
    hm = np.zeros((320, 160), np.float32)
    hm[20, 10] = 0.04
    assert np.isclose(pixel_to_xyz(np.array([20, 10]), hm)[2], 0.04)
    with pytest.raises(IndexError):
        pixel_to_xyz(np.array([320, 0]), hm)


def test_fusion_keeps_highest_point_and_drops_outside():
    pts = np.array([[0.3, 0.0, 0.01], [0.3, 0.0, 0.05], [0.3, 0.0, 0.02], [2.0, 0.0, 0.1]])
    colors = np.array([[1, 1, 1], [200, 0, 0], [3, 3, 3], [9, 9, 9]], np.uint8)
    hm, cm, lm = fuse_heightmap(pts, colors, labels=np.array([1, 2, 3, 4]))
    r, c = xyz_to_pixel(pts[0])
    assert np.isclose(hm[r, c], 0.05) and tuple(cm[r, c]) == (200, 0, 0) and lm[r, c] == 2
    assert (hm > 0).sum() == 1 and (lm >= 0).sum() == 1
