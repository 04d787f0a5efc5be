import numpy as np
import pytest

from vlarm.sim import Scene, default_cameras
from vlarm.sim.appearance import (
    Lighting,
    jitter_cameras,
    observe,
    set_background_color,
    set_table_checker,
    set_table_color,
)


@pytest.fixture(scope="module")
def scene():
    s = Scene(cameras=default_cameras(0.25))
    s.reset()
    s.add_block((np.array([0.5, 0.0, 0.0]), np.array([0, 0, 0, 1.0])), (1, 0, 0), "red")
    yield s
    s.close()


def test_default_observe_matches_scene_observe(scene):
    a, b = scene.observe(), observe(scene)
    assert np.array_equal(a.colormap, b.colormap) and np.array_equal(a.heightmap, b.heightmap)


def test_table_colour_texture_and_background(scene):
    base = observe(scene).colormap
    set_table_color(scene, (0.9, 0.9, 0.9))
    bright = observe(scene).colormap
    set_table_color(scene, (0.1, 0.1, 0.1))
    set_table_checker(scene, 0.05, (1, 1, 1))
    checker = observe(scene).colormap
    set_background_color(scene, (0, 0, 1))
    scene.reset()   # a reset restores the default look
    scene.add_block((np.array([0.5, 0.0, 0.0]), np.array([0, 0, 0, 1.0])), (1, 0, 0), "red")
    assert bright.mean() > base.mean() + 30
    seen = checker.any(-1)   # pixels some camera saw
    assert (checker[seen].max(-1) < 50).mean() > 0.2 and (checker[seen].min(-1) > 200).mean() > 0.2   # both colours
    assert np.array_equal(observe(scene).colormap, base)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        set_table_color(scene, (2, 0, 0))
    with pytest.raises(ValueError, match="cell"):
        set_table_checker(scene, 0.0)


def test_lighting_changes_shading_and_is_validated():
    scene = Scene(cameras=default_cameras(0.25))   # a client of its own: PyBullet keeps the last light per client
    try:
        scene.reset()
        scene.add_block((np.array([0.5, 0.0, 0.0]), np.array([0, 0, 0, 1.0])), (1, 0, 0), "red")
        default = observe(scene).colormap
        dim = observe(scene, lighting=Lighting(ambient=0.2, diffuse=0.1, specular=0.0)).colormap
        assert dim.mean() < default.mean() - 5
    finally:
        scene.close()
    with pytest.raises(ValueError, match="direction"):
        Lighting(direction=(0, 0, 0))


def test_camera_error_misplaces_points_but_zero_error_does_not(scene):
    rng = np.random.default_rng(0)
    same = jitter_cameras(scene.cameras, rng, 0.0, 0.0)
    assert same == tuple(scene.cameras)
    moved = jitter_cameras(scene.cameras, rng, 0.02, 0.02)
    pairs = zip(moved, scene.cameras, strict=True)
    assert all(np.abs(np.subtract(m.position, c.position)).max() <= 0.02 for m, c in pairs)
    assert np.abs(observe(scene, actual_cameras=moved).heightmap - observe(scene).heightmap).max() > 0.01
    with pytest.raises(ValueError, match=">= 0"):
        jitter_cameras(scene.cameras, rng, -1, 0)
    with pytest.raises(ValueError, match="one to one"):
        observe(scene, actual_cameras=moved[:1])
