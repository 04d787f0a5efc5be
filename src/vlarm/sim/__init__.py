"""PyBullet tabletop simulator: scene, arm + suction, procedural assets, cameras, heightmaps, primitives.

Imports only numpy and pybullet (DESIGN.md layer rule).
"""

from vlarm.sim.cameras import DEFAULT_CAMERAS, CameraConfig, default_cameras
from vlarm.sim.heightmap import PIXEL_SIZE, WORKSPACE_BOUNDS, heightmap_shape, pixel_to_xyz, xyz_to_pixel
from vlarm.sim.primitives import PrimitiveResult, pick_place
from vlarm.sim.scene import Observation, Scene, SceneObject

__all__ = [
    "CameraConfig", "DEFAULT_CAMERAS", "default_cameras", "PIXEL_SIZE", "WORKSPACE_BOUNDS", "heightmap_shape",
    "pixel_to_xyz", "xyz_to_pixel", "PrimitiveResult", "pick_place", "Observation", "Scene", "SceneObject",
]
