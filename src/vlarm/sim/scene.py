"""The tabletop scene: a PyBullet client (DIRECT mode) with table, arm, suction tool, objects and cameras.

The scene is rebuilt from scratch on every :meth:`Scene.reset` (``resetSimulation`` + reload), which makes
episodes reproducible from a seed (REFERENCE.md Sec. 10: restoring state by resetting bases may not be).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import pybullet as p

from vlarm.sim import assets
from vlarm.sim.arm import SuctionArm
from vlarm.sim.cameras import (
    RENDERER,
    CameraConfig,
    check_renderer,
    default_cameras,
    depth_to_points,
    load_egl_plugin,
    native_output_silenced,
    render,
)
from vlarm.sim.heightmap import PIXEL_SIZE, WORKSPACE_BOUNDS, fuse_heightmap
from vlarm.sim.transforms import Pose

TIMESTEP = 1.0 / 240.0


class ObservationError(ValueError):
    """An observation array holds NaN or inf (a renderer or fusion fault); raised by :meth:`Scene.observe`."""


def check_finite(array: np.ndarray, what: str) -> np.ndarray:
    """Return ``array`` unchanged if every value is finite (integer arrays always are).

    Args:
        array: any numpy array (e.g. ``(H, W)`` float32 depth in metres).
        what: what the array is, for the message (e.g. ``"depth of camera 'front'"``).

    Raises:
        ObservationError: naming ``what``, how many values are NaN / inf, and the first bad pixel.
    """
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.inexact):
        return array
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ObservationError(
            f"{what} has {int(np.isnan(array).sum())} NaN and {int(np.isinf(array).sum())} inf values of "
            f"{array.size} (first at pixel {first}); check the camera's z_range (0 < near < far) and the renderer")
    return array


@dataclass
class SceneObject:
    """Book-keeping for one object in the scene.

    Attributes:
        body: PyBullet body id.
        kind: object category, e.g. ``"block"`` or ``"bowl"``.
        color: colour name (e.g. ``"red"``).
        size: ``(x, y, z)`` bounding size in metres.
        fixed: whether the body has a fixed base.
    """

    body: int
    kind: str
    color: str
    size: tuple[float, float, float]
    fixed: bool = False


@dataclass
class Observation:
    """One multi-camera observation.

    Attributes:
        rgb: camera name -> ``(H, W, 3)`` uint8.
        depth: camera name -> ``(H, W)`` float32 metres.
        heightmap: ``(320, 160)`` float32 metres above the table.
        colormap: ``(320, 160, 3)`` uint8.
        segmentation: ``(320, 160)`` int32 body id of the top surface (-1 where empty).
    """

    rgb: dict[str, np.ndarray] = field(default_factory=dict)
    depth: dict[str, np.ndarray] = field(default_factory=dict)
    heightmap: np.ndarray | None = None
    colormap: np.ndarray | None = None
    segmentation: np.ndarray | None = None


class Scene:
    """A rebuildable PyBullet tabletop.

    Args:
        cameras: camera configurations (default: CLIPort's front/left/right at 480x640, fx = fy = 450).
        bounds: 3x2 workspace bounds in metres.
        pixel_size: heightmap resolution in metres per pixel.
        renderer: ``"tiny"`` (PyBullet's TinyRenderer), ``"egl"`` (its EGL plugin; RuntimeError where it does not
            load) or ``"auto"`` (EGL where it loads, else tiny). :attr:`renderer` names the one in use.
    """

    def __init__(self, cameras: tuple[CameraConfig, ...] | None = None,
                 bounds: np.ndarray = WORKSPACE_BOUNDS, pixel_size: float = PIXEL_SIZE, renderer: str = RENDERER):
        check_renderer(renderer, auto=True)
        self.cameras = tuple(cameras) if cameras is not None else default_cameras()
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.pixel_size = float(pixel_size)
        self.client = p.connect(p.DIRECT)
        self.ik_client = p.connect(p.DIRECT)
        #: The renderer in use (``"auto"`` resolved: EGL where its plugin loads, else TinyRenderer).
        self.renderer = "tiny"
        if renderer in ("egl", "auto"):
            if load_egl_plugin(self.client):
                self.renderer = "egl"
            elif renderer == "egl":
                self.close()
                raise RuntimeError("PyBullet's EGL renderer plugin does not load on this machine (it needs an EGL "
                                   "library, e.g. Debian's libegl-mesa0); use renderer 'tiny' or 'auto'")
        self.objects: dict[int, SceneObject] = {}
        self.arm: SuctionArm | None = None
        self.sim_steps = 0
        #: Optional ``callback(scene)`` called every ``frame_every`` physics steps (video recording).
        self.frame_callback = None
        self.frame_every = 24

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        """What a pickled scene carries: its constructor arguments, never a PyBullet client id.

        A client id names a connection inside one process, so a scene sent to another process (a Ray worker,
        ``multiprocessing``) rebuilds its own clients from these arguments in :meth:`__setstate__`. The renderer is
        the one in use (``"auto"`` resolved), so the copy renders exactly like the original or fails loudly where
        that renderer does not load. Bodies, the arm and ``frame_callback`` are not carried: call :meth:`reset`
        (through a task or env reset) before using the copy.
        """
        return {"cameras": self.cameras, "bounds": self.bounds, "pixel_size": self.pixel_size,
                "renderer": self.renderer, "frame_every": self.frame_every}

    def __setstate__(self, state: dict) -> None:
        """Rebuild the scene in this process: new PyBullet clients, empty until :meth:`reset`."""
        state = dict(state)
        frame_every = state.pop("frame_every", 24)
        self.__init__(**state)
        self.frame_every = frame_every

    def reset(self) -> None:
        """Clear everything and rebuild the table and the arm at its home pose."""
        c = self.client
        p.resetSimulation(physicsClientId=c)
        p.setGravity(0, 0, -9.8, physicsClientId=c)
        p.setTimeStep(TIMESTEP, physicsClientId=c)
        self.plane, self.workspace = assets.create_table(c, self.bounds)
        self.arm = SuctionArm(c, self.ik_client)
        self.objects = {}
        self.sim_steps = 0

    def close(self) -> None:
        """Disconnect the PyBullet clients (safe to call twice)."""
        for cid in (self.client, self.ik_client):
            quiet = native_output_silenced() if self.renderer == "egl" else contextlib.nullcontext()
            try:
                with quiet:   # the EGL plugin prints a banner when it unloads
                    p.disconnect(physicsClientId=cid)
            except p.error:
                pass

    # ------------------------------------------------------------------ objects
    def add_block(self, pose: Pose, rgb, color: str, size: float = assets.BLOCK_SIZE) -> int:
        """Add a block resting with its bottom at ``pose``'s z; returns its body id."""
        pos = np.asarray(pose[0], dtype=np.float64) + np.array([0, 0, size / 2])
        body = assets.create_block(self.client, pos, pose[1], rgb, size)
        self.objects[body] = SceneObject(body, "block", color, (size, size, size))
        return body

    def add_bowl(self, pose: Pose, rgb, color: str, fixed: bool = False) -> int:
        """Add a bowl standing at ``pose``; returns its body id."""
        body = assets.create_bowl(self.client, pose[0], pose[1], rgb, fixed=fixed)
        d = 2 * assets.BOWL_RADIUS
        self.objects[body] = SceneObject(body, "bowl", color, (d, d, assets.BOWL_HEIGHT), fixed)
        return body

    def add_object(self, body: int, kind: str, color: str, size, fixed: bool = False) -> int:
        """Record a body built elsewhere (``vlarm.sim.assets`` or a task's own asset code) as a scene object.

        Args:
            body: PyBullet body id in :attr:`client`.
            kind: object category, e.g. ``"disk"``, ``"kit"``, ``"box"``, ``"letter E"``.
            color: colour name (``""`` when the object has no named colour).
            size: ``(x, y, z)`` bounding size in metres.
            fixed: True for bodies the suction tool may not pick (kits, boxes, stands, zones).

        Returns:
            ``body``.
        """
        self.objects[body] = SceneObject(body, kind, color, tuple(float(v) for v in size), fixed)
        return body

    def pose(self, body: int) -> Pose:
        """Base pose of a body: position in metres, quaternion xyzw."""
        pos, quat = p.getBasePositionAndOrientation(body, physicsClientId=self.client)
        return np.asarray(pos), np.asarray(quat)

    def graspable(self) -> set[int]:
        """Body ids the suction tool may pick (every non-fixed object)."""
        return {b for b, o in self.objects.items() if not o.fixed}

    # ------------------------------------------------------------------ physics
    def step(self, n: int = 1) -> None:
        """Advance physics by ``n`` steps of 1/240 s."""
        for _ in range(n):
            p.stepSimulation(physicsClientId=self.client)
            self.sim_steps += 1
            if self.frame_callback is not None and self.sim_steps % self.frame_every == 0:
                self.frame_callback(self)

    def settle(self, max_steps: int = 480, tol: float = 1e-3) -> None:
        """Step until every object moves slower than ``tol`` m/s (or ``max_steps`` steps pass)."""
        for _ in range(0, max_steps, 8):
            self.step(8)
            moving = False
            for body in self.objects:
                lin, ang = p.getBaseVelocity(body, physicsClientId=self.client)
                if np.linalg.norm(lin) > tol or np.linalg.norm(ang) > 10 * tol:
                    moving = True
                    break
            if not moving:
                return

    # ------------------------------------------------------------------ sensing
    def observe(self, render_cameras: bool = True) -> Observation:
        """Render every camera and fuse the top-down heightmap, colour map and segmentation.

        Args:
            render_cameras: if False, return an empty observation (for speed when nothing needs it).

        Returns:
            An :class:`Observation`; every array in it is finite.

        Raises:
            ObservationError: a camera's rgb or depth, or the fused heightmap or colour map, holds NaN or inf
                (the message names the camera and array).
        """
        obs = Observation()
        if not render_cameras:
            return obs
        points, colors, labels = [], [], []
        for cam in self.cameras:
            rgb, depth, seg = render(self.client, cam, self.renderer)
            check_finite(rgb, f"rgb of camera {cam.name!r}")
            check_finite(depth, f"depth of camera {cam.name!r}")
            obs.rgb[cam.name], obs.depth[cam.name] = rgb, depth
            points.append(depth_to_points(depth, cam))
            colors.append(rgb.reshape(-1, 3))
            labels.append(seg.reshape(-1))
        hmap, cmap, smap = fuse_heightmap(np.concatenate(points), np.concatenate(colors), self.bounds,
                                          self.pixel_size, labels=np.concatenate(labels))
        check_finite(hmap, "fused heightmap")
        check_finite(cmap, "fused colormap")
        obs.heightmap, obs.colormap, obs.segmentation = hmap, cmap, smap
        return obs
