"""Scene appearance perturbations: table colour and texture, background colour, lighting, camera pose error.

Used to measure how perception and policies degrade when the scene looks different from training (robustness
families of issue 13; the appearance shifts of RT-1's background tests, Brohan et al. 2022, Sec. 6.3, and of the
robustness part of Vu & Lai 2025). Everything here changes how the scene *looks*, never its physics.

The API is four functions and one dataclass:

* :func:`set_table_color` / :func:`set_background_color`: RGB of the workspace slab / ground plane;
* :func:`set_table_checker`: a checkerboard pattern over the workspace slab;
* :class:`Lighting`: direction and coefficients of PyBullet's directional light;
* :func:`jitter_cameras`: camera poses with a random translation and rotation error;
* :func:`observe`: render the scene (optionally with other lighting and *other* camera poses) and fuse the
  top-down maps with the *nominal* cameras, i.e. what a robot sees when its cameras moved after calibration.

Colours are RGB floats in [0, 1]; distances metres; angles radians. Imports only numpy and pybullet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pybullet as p

from vlarm.sim.cameras import CameraConfig, depth_to_points, render
from vlarm.sim.heightmap import fuse_heightmap
from vlarm.sim.scene import Observation, Scene, check_finite


def _rgb(color: Sequence[float], what: str) -> list[float]:
    values = [float(v) for v in color]
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{what} must be three floats in [0, 1] (RGB), got {list(color)!r}")
    return values


def set_table_color(scene: Scene, color: Sequence[float]) -> None:
    """Paint the workspace slab (the dark table top the objects stand on) in ``color``.

    Args:
        scene: a scene after :meth:`Scene.reset` (which rebuilds the table in its default colour).
        color: RGB floats in [0, 1].

    Raises:
        ValueError: a colour that is not three floats in [0, 1].
    """
    p.changeVisualShape(scene.workspace, -1, rgbaColor=[*_rgb(color, "table colour"), 1.0],
                        textureUniqueId=-1, physicsClientId=scene.client)


def set_background_color(scene: Scene, color: Sequence[float]) -> None:
    """Paint the ground plane around the workspace (the background the side cameras see) in ``color``.

    Raises:
        ValueError: a colour that is not three floats in [0, 1].
    """
    p.changeVisualShape(scene.plane, -1, rgbaColor=[*_rgb(color, "background colour"), 1.0],
                        physicsClientId=scene.client)


def set_table_checker(scene: Scene, cell: float = 0.0625, color: Sequence[float] = (0.7, 0.7, 0.7)) -> list[int]:
    """Lay a checkerboard over the workspace: squares of ``cell`` metres in ``color`` on every other cell, the
    table's own colour in between (visual-only bodies: no collision, 1 mm thin with its top 2 mm above the
    table, as thin as the depth buffer resolves without z-fighting; objects are detected from 4 mm up).

    PyBullet's procedural boxes carry no usable texture coordinates, so the pattern is made of geometry.

    Args:
        scene: a reset scene.
        cell: square side in metres (> 0; the workspace must hold at least one).
        color: RGB floats in [0, 1] of the squares.

    Returns:
        The body ids of the squares.

    Raises:
        ValueError: a bad ``cell`` or colour.
    """
    rgb = _rgb(color, "checker colour")
    (x0, x1), (y0, y1) = scene.bounds[0], scene.bounds[1]
    if not 0 < cell <= min(x1 - x0, y1 - y0):
        raise ValueError(f"cell must be in (0, {min(x1 - x0, y1 - y0)}] metres, got {cell}")
    nx, ny = int((x1 - x0) // cell), int((y1 - y0) // cell)
    centres = [[x0 + (i + 0.5) * cell, y0 + (j + 0.5) * cell, 0.0015]
               for i in range(nx) for j in range(ny) if (i + j) % 2 == 0]
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[cell / 2, cell / 2, 0.0005], rgbaColor=[*rgb, 1.0],
                              physicsClientId=scene.client)
    # one body per square: PyBullet's renderers draw only part of a multi-shape visual array
    return [p.createMultiBody(0, -1, vis, c, physicsClientId=scene.client) for c in centres]


@dataclass(frozen=True)
class Lighting:
    """PyBullet's directional light for :func:`observe` (TinyRenderer and EGL both honour it).

    Attributes:
        direction: unit-free 3-vector pointing from the scene towards the light, world frame.
        ambient / diffuse / specular: the renderer's light coefficients (>= 0).

    PyBullet keeps the last light given to a physics client for every later render of that client (including
    :meth:`Scene.observe` and ``observe(scene, lighting=None)``); its built-in light cannot be set back
    explicitly. Render each lighting condition in a scene (client) of its own.
    """

    direction: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.6
    diffuse: float = 0.35
    specular: float = 0.05

    def __post_init__(self) -> None:
        """Raises ValueError for a zero or non-finite direction or a negative coefficient."""
        d = np.asarray(self.direction, dtype=np.float64)
        if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
            raise ValueError(f"light direction must be three finite numbers, not all zero; got {self.direction!r}")
        if min(self.ambient, self.diffuse, self.specular) < 0:
            raise ValueError("light coefficients must be >= 0")


def jitter_cameras(cameras: Sequence[CameraConfig], rng: np.random.Generator, translation: float,
                   rotation: float) -> tuple[CameraConfig, ...]:
    """Each camera moved by a random offset: position + U(-t, t) per axis, Euler angles + U(-r, r) per axis.

    Args:
        cameras: the nominal cameras.
        rng: randomness.
        translation: largest position error per axis in metres (>= 0).
        rotation: largest angle error per Euler axis in radians (>= 0).

    Returns:
        The moved cameras (same names, sizes and intrinsics).

    Raises:
        ValueError: a negative magnitude.
    """
    if translation < 0 or rotation < 0:
        raise ValueError(f"jitter magnitudes must be >= 0, got translation={translation}, rotation={rotation}")
    out = []
    for cam in cameras:
        dp = rng.uniform(-translation, translation, 3) if translation else np.zeros(3)
        dr = rng.uniform(-rotation, rotation, 3) if rotation else np.zeros(3)
        out.append(replace(cam, position=tuple(np.add(cam.position, dp)), rotation=tuple(np.add(cam.rotation, dr))))
    return tuple(out)


def _light(lighting: Lighting | None) -> dict | None:
    """``getCameraImage`` lighting arguments of ``lighting`` (None: PyBullet's default light)."""
    if lighting is None:
        return None
    return {"lightDirection": list(lighting.direction), "lightAmbientCoeff": lighting.ambient,
            "lightDiffuseCoeff": lighting.diffuse, "lightSpecularCoeff": lighting.specular}


def observe(scene: Scene, lighting: Lighting | None = None,
            actual_cameras: Sequence[CameraConfig] | None = None) -> Observation:
    """Render and fuse an observation like :meth:`Scene.observe`, under other lighting and/or camera poses.

    The images come from ``actual_cameras`` (where the cameras really are), the fusion into the top-down maps
    uses ``scene.cameras`` (where the robot believes they are): a camera that moved after calibration
    misplaces every point it sees, which is the camera-pose robustness family.

    Args:
        scene: a reset scene.
        lighting: the light, or None to keep the client's current light (PyBullet's default in a client never
            given one; then identical to :meth:`Scene.observe`). A light given once stays for the client's later
            renders (see :class:`Lighting`).
        actual_cameras: one camera per ``scene.cameras`` (same order, same image sizes), or None for the nominal
            ones.

    Returns:
        An :class:`~vlarm.sim.scene.Observation` (rgb/depth per camera, fused heightmap, colormap, segmentation).

    Raises:
        ValueError: ``actual_cameras`` of another length or image sizes than ``scene.cameras``.
        vlarm.sim.scene.ObservationError: a non-finite array.
    """
    nominal = tuple(scene.cameras)
    actual = tuple(actual_cameras) if actual_cameras is not None else nominal
    if len(actual) != len(nominal) or any(a.image_size != n.image_size for a, n in zip(actual, nominal, strict=True)):
        raise ValueError("actual_cameras must match scene.cameras one to one, with the same image sizes")
    obs = Observation()
    points, colors, labels = [], [], []
    for cam, believed in zip(actual, nominal, strict=True):
        rgb, depth, seg = render(scene.client, cam, scene.renderer, _light(lighting))
        check_finite(depth, f"depth of camera {cam.name!r}")
        obs.rgb[cam.name], obs.depth[cam.name] = rgb, depth
        points.append(depth_to_points(depth, believed))
        colors.append(rgb.reshape(-1, 3))
        labels.append(seg.reshape(-1))
    obs.heightmap, obs.colormap, obs.segmentation = fuse_heightmap(
        np.concatenate(points), np.concatenate(colors), scene.bounds, scene.pixel_size, labels=np.concatenate(labels))
    check_finite(obs.heightmap, "fused heightmap")
    return obs


__all__ = ["Lighting", "jitter_cameras", "observe", "set_background_color", "set_table_checker", "set_table_color"]
