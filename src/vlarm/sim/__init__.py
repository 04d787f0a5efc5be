"""PyBullet tabletop simulator: scene, arm + suction, procedural assets, cameras, heightmaps, primitives.

Imports only numpy and pybullet (DESIGN.md layer rule).
"""

import os as _os
import sys as _sys


def _import_pybullet_quietly():
    """Import pybullet once with its C-level 'build time' banner sent to /dev/null."""
    if "pybullet" in _sys.modules:
        return
    import ctypes

    _sys.stdout.flush()
    _sys.stderr.flush()
    saved = {fd: _os.dup(fd) for fd in (1, 2)}
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        for fd in saved:
            _os.dup2(devnull, fd)
        import pybullet  # noqa: F401

        ctypes.CDLL(None).fflush(None)
    finally:
        for fd, orig in saved.items():
            _os.dup2(orig, fd)
            _os.close(orig)
        _os.close(devnull)


_import_pybullet_quietly()

from vlarm.sim.cameras import DEFAULT_CAMERAS, CameraConfig, default_cameras  # noqa: E402
from vlarm.sim.heightmap import PIXEL_SIZE, WORKSPACE_BOUNDS, heightmap_shape, pixel_to_xyz, xyz_to_pixel  # noqa: E402
from vlarm.sim.primitives import PrimitiveResult, pick_place, push  # noqa: E402
from vlarm.sim.scene import Observation, Scene, SceneObject  # noqa: E402

__all__ = [
    "CameraConfig", "DEFAULT_CAMERAS", "default_cameras", "PIXEL_SIZE", "WORKSPACE_BOUNDS", "heightmap_shape",
    "pixel_to_xyz", "xyz_to_pixel", "PrimitiveResult", "pick_place", "push", "Observation", "Scene", "SceneObject",
]
