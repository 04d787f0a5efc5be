"""A named-object set for the packing tasks, built in code (stand-in for CLIPort's Google scanned objects).

CLIPort's packing-{seen,unseen}-google-objects tasks (Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A) use 56
scanned household objects that cannot be downloaded here. This module builds 56 distinct, nameable objects instead:
53 procedural ones (rigid multi-shape bodies of boxes, cylinders, spheres and capsules) and 3 from pybullet_data
meshes (duck, teddy, bunny). Each object has a fixed name and a characteristic colour, rests flat on the table,
fits a 12 x 12 cm footprint, has a top the suction tool can touch, and carries points for the 'zone' metric.
The seen/unseen split of the names (37 train, 19 val/test) lives in :mod:`vlarm.tasks.attributes` (a test checks
that it covers exactly these names).

Body frame of every object: origin at the centre of its footprint on the table (z = 0 at its bottom), x mostly
along its longest side. The centre of mass is the body frame's origin (a weighted toy), so objects right themselves
and round ones do not roll away; PyBullet reports a body's pose at its centre of mass, so the reported pose is this
frame. Objects are at most 9 cm tall, so wherever the suction tool touches the top it stays within the pick-and-place
primitive's 10 cm check that the object is still held.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, replace

import numpy as np
import pybullet as p
import pybullet_data

#: Largest footprint side of any object, metres (CLIPort's objects fit its packing cells; ours fit 12 x 12 cm).
MAX_FOOTPRINT = 0.12
#: Grid step of the zone-metric points inside each part, metres.
POINT_SPACING = 0.008
#: Most parts one object may have (PyBullet's ``create*ShapeArray`` limit).
MAX_PARTS = 16
#: Mass of every object, kilograms.
OBJECT_MASS = 0.08

SHAPES: tuple[str, ...] = ("box", "cylinder", "sphere", "capsule", "mesh")
_GEOM = {"box": p.GEOM_BOX, "cylinder": p.GEOM_CYLINDER, "sphere": p.GEOM_SPHERE, "capsule": p.GEOM_CAPSULE,
         "mesh": p.GEOM_MESH}

# Characteristic colours (RGB in [0, 1]).
RED = (0.85, 0.13, 0.13)
DARK_RED = (0.45, 0.05, 0.05)
WHITE = (0.95, 0.95, 0.93)
SILVER = (0.72, 0.73, 0.76)
GRAY = (0.45, 0.46, 0.48)
BLACK = (0.1, 0.1, 0.1)
GREEN = (0.15, 0.55, 0.2)
LEAF = (0.3, 0.7, 0.2)
YELLOW = (0.98, 0.85, 0.1)
ORANGE = (0.98, 0.5, 0.05)
BLUE = (0.15, 0.3, 0.85)
LIGHT_BLUE = (0.6, 0.8, 0.95)
NAVY = (0.1, 0.12, 0.35)
PURPLE = (0.55, 0.25, 0.75)
PINK = (0.98, 0.55, 0.7)
BROWN = (0.45, 0.27, 0.12)
CHOCOLATE = (0.3, 0.16, 0.07)
WOOD = (0.82, 0.63, 0.4)
GOLD = (0.85, 0.68, 0.2)
LIME = (0.8, 0.92, 0.2)
CORAL = (0.98, 0.42, 0.32)


@dataclass(frozen=True)
class Part:
    """One primitive shape of an object, in the object's body frame (metres, radians).

    Attributes:
        shape: one of :data:`SHAPES`.
        centre: ``(x, y, z)`` of the shape's centre.
        dims: ``box``: ``(sx, sy, sz)`` edge lengths; ``cylinder`` / ``capsule``: ``(radius, length)`` along the
            shape's z axis (a capsule's length excludes its caps); ``sphere``: ``(radius,)``; ``mesh``: ``(sx, sy,
            sz)`` mesh scale.
        color: RGB in [0, 1].
        euler: ``(roll, pitch, yaw)`` of the shape.
        collide: False for a visual-only detail (a label, pips, a screen).
        mesh: for ``mesh``: ``(visual .obj, collision .obj)`` paths relative to ``pybullet_data``.
    """

    shape: str
    centre: tuple[float, float, float]
    dims: tuple[float, ...]
    color: tuple[float, float, float]
    euler: tuple[float, float, float] = (0.0, 0.0, 0.0)
    collide: bool = True
    mesh: tuple[str, str] | None = None


@dataclass(frozen=True)
class ObjectSpec:
    """A named object: its characteristic colour and the parts it is built from.

    Attributes:
        name: the object's name in instructions, e.g. ``"hammer"``.
        color: the colour word that describes it (``SceneObject.color``), e.g. ``"brown"``.
        parts: its shapes, body frame (see the module docstring).
    """

    name: str
    color: str
    parts: tuple[Part, ...]


# ---------------------------------------------------------------------------------------------------------- shapes
def _box(centre, size, color, yaw: float = 0.0, collide: bool = True) -> Part:
    return Part("box", tuple(centre), tuple(size), color, (0.0, 0.0, yaw), collide)


def _plate(x, y, z, sx, sy, color, yaw: float = 0.0) -> Part:
    """A 1 mm visual-only detail lying on a surface at height ``z`` (labels, screens, stickers)."""
    return Part("box", (x, y, z + 0.0005), (sx, sy, 0.001), color, (0.0, 0.0, yaw), False)


def _cyl(centre, radius, length, color, euler=(0.0, 0.0, 0.0), collide: bool = True) -> Part:
    return Part("cylinder", tuple(centre), (radius, length), color, tuple(euler), collide)


def _disk(x, y, z, radius, color) -> Part:
    """A 1 mm visual-only disk lying on a surface at height ``z``."""
    return Part("cylinder", (x, y, z + 0.0005), (radius, 0.001), color, (0.0, 0.0, 0.0), False)


def _sphere(centre, radius, color) -> Part:
    return Part("sphere", tuple(centre), (radius,), color)


def _capsule(centre, radius, length, color, euler=(0.0, math.pi / 2, 0.0)) -> Part:
    """A capsule, by default lying along x."""
    return Part("capsule", tuple(centre), (radius, length), color, tuple(euler))


def _ring(radius, width, height, color, centre=(0.0, 0.0), segments: int = 12, z0: float = 0.0) -> list[Part]:
    """A flat ring (tape roll, lens rim, finger loop) of ``segments`` boxes standing on ``z0``."""
    seg = 2 * (radius - width / 2) * math.tan(math.pi / segments) + width
    parts = []
    for k in range(segments):
        a = 2 * math.pi * k / segments
        r = radius - width / 2
        parts.append(_box((centre[0] + r * math.cos(a), centre[1] + r * math.sin(a), z0 + height / 2),
                          (width, seg, height), color, yaw=a))
    return parts


def _mesh(visual: str, collision: str, size: float, color, euler=(0.0, 0.0, 0.0)) -> Part:
    """A pybullet_data mesh scaled so its longer footprint side is ``size`` metres, resting on z = 0, centred."""
    lo, hi = _mesh_bounds(visual, euler)
    scale = size / float(max(hi[0] - lo[0], hi[1] - lo[1]))
    centre = -scale * np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    return Part("mesh", tuple(float(c) for c in centre), (scale,) * 3, color, tuple(euler), True,
                (visual, collision))


@functools.cache
def _mesh_vertices(path: str) -> np.ndarray:
    """``(N, 3)`` float64 vertices of a pybullet_data ``.obj`` file (unscaled, file frame)."""
    with open(os.path.join(pybullet_data.getDataPath(), path)) as f:
        rows = [line.split()[1:4] for line in f if line.startswith("v ")]
    return np.asarray(rows, dtype=np.float64)


def _mesh_bounds(path: str, euler) -> tuple[np.ndarray, np.ndarray]:
    verts = _mesh_vertices(path) @ _rotation(euler).T
    return verts.min(0), verts.max(0)


def _rotation(euler) -> np.ndarray:
    return np.asarray(p.getMatrixFromQuaternion(p.getQuaternionFromEuler(tuple(euler)))).reshape(3, 3)


# ---------------------------------------------------------------------------------------------------------- points
@functools.cache
def object_points(name: str) -> np.ndarray:
    """Points inside a named object's collision parts, in its body frame (the 'zone' metric's points).

    A grid of :data:`POINT_SPACING` inside every box, cylinder, sphere and capsule, with each part's corners and
    rim kept so the points span its extent; mesh parts contribute their (scaled) vertices. Ravens' zone metric counts
    the share of an object's points inside a zone (``Task.reward``, Zeng et al. 2020).

    Returns:
        ``(N, 3)`` float32 metres (a cached array: do not modify it).

    Raises:
        ValueError: for an unknown name.
    """
    pts = [_part_points(part) for part in object_spec(name).parts if part.collide]
    out = np.concatenate(pts).astype(np.float32)
    out.setflags(write=False)
    return out


def _part_points(part: Part) -> np.ndarray:
    """Points of one part in the body frame."""
    rot = _rotation(part.euler)
    if part.shape == "mesh":
        verts = _mesh_vertices(part.mesh[1]) * np.asarray(part.dims)
        return verts @ rot.T + np.asarray(part.centre)
    if part.shape == "box":
        half = np.asarray(part.dims) / 2
    elif part.shape == "sphere":
        half = np.full(3, part.dims[0])
    else:
        r, length = part.dims
        half = np.array([r, r, length / 2 + (r if part.shape == "capsule" else 0.0)])
    axes = [np.linspace(-h, h, max(2, int(np.ceil(2 * h / POINT_SPACING)) + 1)) for h in half]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    if part.shape == "cylinder":
        grid = _clip_radius(grid, part.dims[0], axis_dims=2)
    elif part.shape == "sphere":
        grid = _clip_radius(grid, part.dims[0], axis_dims=3)
    elif part.shape == "capsule":
        r, length = part.dims
        z = np.clip(grid[:, 2], -length / 2, length / 2)
        keep = np.linalg.norm(grid - np.stack([0 * z, 0 * z, z], axis=1), axis=1) <= r * (1 + 1e-6)
        grid = grid[keep]
    return grid @ rot.T + np.asarray(part.centre)


def _clip_radius(grid: np.ndarray, radius: float, axis_dims: int) -> np.ndarray:
    """Points of ``grid`` within ``radius`` of the z axis (``axis_dims=2``) or of the origin (3); points pushed onto
    the rim so the extent is kept."""
    norm = np.linalg.norm(grid[:, :axis_dims], axis=1)
    scale = np.where(norm > radius, radius / np.maximum(norm, 1e-12), 1.0)
    grid = grid.copy()
    grid[:, :axis_dims] *= scale[:, None]
    return np.unique(np.round(grid, 6), axis=0)


# ---------------------------------------------------------------------------------------------------------- catalogue
def _catalogue() -> dict[str, ObjectSpec]:
    """Every object, by name (see the module docstring for the body frame)."""
    pi = math.pi
    objects = [
        # ------------------------------------------------------------------ kitchen
        ObjectSpec("mug", "red", (
            _cyl((0, 0, 0.035), 0.038, 0.07, RED), _box((0.049, 0, 0.035), (0.024, 0.012, 0.045), RED),
            _disk(0, 0, 0.07, 0.031, DARK_RED))),
        ObjectSpec("paper cup", "white", (
            _cyl((0, 0, 0.02), 0.028, 0.04, WHITE), _cyl((0, 0, 0.0525), 0.036, 0.025, WHITE),
            _disk(0, 0, 0.065, 0.031, (0.8, 0.78, 0.72)))),
        ObjectSpec("soda can", "red", (
            _cyl((0, 0, 0.04), 0.033, 0.08, RED), _disk(0, 0, 0.08, 0.029, SILVER),
            _plate(0.012, 0, 0.081, 0.014, 0.008, GRAY))),
        ObjectSpec("bottle", "green", (
            _cyl((0, 0, 0.0275), 0.034, 0.055, GREEN), _cyl((0, 0, 0.061), 0.022, 0.012, GREEN),
            _cyl((0, 0, 0.073), 0.012, 0.012, GREEN), _cyl((0, 0, 0.082), 0.014, 0.006, WHITE))),
        ObjectSpec("plate", "white", (
            _cyl((0, 0, 0.006), 0.056, 0.012, WHITE), _disk(0, 0, 0.012, 0.04, (0.85, 0.86, 0.9)))),
        ObjectSpec("frying pan", "black", (
            _cyl((-0.02, 0, 0.0125), 0.039, 0.025, BLACK), _box((0.039, 0, 0.019), (0.042, 0.016, 0.012), BROWN),
            _disk(-0.02, 0, 0.025, 0.033, (0.25, 0.25, 0.27)))),
        ObjectSpec("spatula", "purple", (
            _box((-0.032, 0, 0.005), (0.052, 0.05, 0.01), PURPLE), _box((0.028, 0, 0.007), (0.068, 0.013, 0.014),
                                                                         BLACK))),
        ObjectSpec("fork", "silver", (
            _box((0.03, 0, 0.005), (0.05, 0.013, 0.01), SILVER), _box((-0.003, 0, 0.005), (0.016, 0.026, 0.01),
                                                                       SILVER),
            *[_box((-0.029, y, 0.005), (0.036, 0.004, 0.01), SILVER) for y in (-0.0105, -0.0035, 0.0035, 0.0105)])),
        ObjectSpec("cutting board", "wood", (
            _box((-0.008, 0, 0.0075), (0.1, 0.075, 0.015), WOOD), _box((0.05, 0, 0.0075), (0.016, 0.035, 0.015), WOOD),
            _disk(0.05, 0, 0.015, 0.006, BROWN))),
        ObjectSpec("sponge", "green", (
            _box((0, 0, 0.0125), (0.09, 0.06, 0.025), YELLOW), _box((0, 0, 0.031), (0.09, 0.06, 0.012), GREEN))),
        # ------------------------------------------------------------------ tools
        ObjectSpec("wrench", "gray", (
            _box((-0.005, 0, 0.005), (0.075, 0.014, 0.01), GRAY), _cyl((-0.043, 0, 0.005), 0.013, 0.01, GRAY),
            _box((0.038, 0, 0.005), (0.016, 0.03, 0.01), GRAY),
            _box((0.053, 0.011, 0.005), (0.016, 0.008, 0.01), GRAY),
            _box((0.053, -0.011, 0.005), (0.016, 0.008, 0.01), GRAY))),
        ObjectSpec("pliers", "red", (
            _box((0.02, 0.012, 0.006), (0.064, 0.013, 0.012), RED, yaw=0.18),
            _box((0.02, -0.012, 0.006), (0.064, 0.013, 0.012), RED, yaw=-0.18),
            _box((-0.022, 0, 0.006), (0.016, 0.02, 0.012), GRAY), _box((-0.047, 0, 0.006), (0.036, 0.014, 0.012),
                                                                         GRAY))),
        ObjectSpec("tape measure", "yellow", (
            _box((0, 0, 0.018), (0.066, 0.066, 0.036), YELLOW), _plate(0, 0, 0.036, 0.04, 0.04, BLACK),
            _box((0.037, -0.02, 0.004), (0.01, 0.016, 0.008), GRAY))),
        ObjectSpec("silver tape", "silver", tuple(_ring(0.048, 0.016, 0.03, SILVER))),
        ObjectSpec("flashlight", "red", (
            _box((-0.015, 0, 0.015), (0.085, 0.03, 0.03), RED), _box((0.04, 0, 0.02), (0.026, 0.042, 0.04), WHITE),
            _disk(0.0, 0, 0.03, 0.006, BLACK))),
        ObjectSpec("padlock", "gold", (
            _box((0, -0.012, 0.008), (0.05, 0.044, 0.016), GOLD),
            _box((-0.017, 0.02, 0.005), (0.008, 0.024, 0.01), SILVER), _box((0.017, 0.02, 0.005),
                                                                             (0.008, 0.024, 0.01), SILVER),
            _box((0, 0.03, 0.005), (0.042, 0.008, 0.01), SILVER), _disk(0, -0.018, 0.016, 0.005, BLACK))),
        ObjectSpec("battery", "black", (
            _box((-0.01, 0, 0.009), (0.03, 0.028, 0.018), BLACK), _box((0.015, 0, 0.009), (0.02, 0.028, 0.018), ORANGE),
            _cyl((0.02, 0.007, 0.021), 0.004, 0.006, SILVER), _cyl((0.02, -0.007, 0.021), 0.004, 0.006, SILVER))),
        # ------------------------------------------------------------------ toys
        ObjectSpec("rubber duck", "yellow", (_mesh("duck.obj", "duck_vhacd.obj", 0.085, YELLOW, (pi / 2, 0, 0)),)),
        ObjectSpec("teddy bear", "brown", (
            _mesh("teddy2_VHACD_CHs.obj", "teddy2_VHACD_CHs.obj", 0.07, BROWN, (pi / 2 + 0.32, 0, 0)),)),
        ObjectSpec("dice", "white", (
            _box((0, 0, 0.0175), (0.035, 0.035, 0.035), WHITE),
            *[_plate(x, y, 0.035, 0.006, 0.006, BLACK) for x, y in ((0, 0), (0.01, 0.01), (-0.01, -0.01),
                                                                     (0.01, -0.01), (-0.01, 0.01))])),
        ObjectSpec("toy car", "red", (
            _box((0, 0, 0.018), (0.1, 0.045, 0.02), RED), _box((-0.008, 0, 0.036), (0.048, 0.04, 0.016), RED),
            _plate(-0.008, 0, 0.044, 0.036, 0.034, LIGHT_BLUE),
            *[_box((x, y, 0.01), (0.022, 0.008, 0.02), BLACK) for x in (-0.03, 0.03) for y in (-0.026, 0.026)])),
        ObjectSpec("toy school bus", "yellow", (
            _box((0, 0, 0.025), (0.112, 0.046, 0.04), YELLOW), _plate(0, 0, 0.045, 0.09, 0.012, BLACK),
            *[_box((x, y, 0.008), (0.02, 0.006, 0.016), BLACK) for x in (-0.035, 0.035) for y in (-0.025, 0.025)])),
        ObjectSpec("frisbee", "orange", (
            _cyl((0, 0, 0.0075), 0.056, 0.015, ORANGE), _disk(0, 0, 0.015, 0.04, (0.85, 0.38, 0.02)))),
        ObjectSpec("tennis ball", "lime", (_sphere((0, 0, 0.033), 0.033, LIME),)),
        ObjectSpec("donut", "pink", tuple(
            _capsule((0.029 * math.cos(a), 0.029 * math.sin(a), 0.016), 0.016, 0.02, PINK,
                     euler=(0, pi / 2, a + pi / 2))
            for a in np.linspace(0, 2 * pi, 10, endpoint=False))),
        ObjectSpec("traffic cone", "orange", (
            _box((0, 0, 0.004), (0.07, 0.07, 0.008), ORANGE), _cyl((0, 0, 0.0155), 0.028, 0.015, ORANGE),
            _cyl((0, 0, 0.0305), 0.022, 0.015, WHITE), _cyl((0, 0, 0.0455), 0.016, 0.015, ORANGE),
            _cyl((0, 0, 0.0585), 0.01, 0.011, ORANGE))),
        ObjectSpec("book", "blue", (
            _box((0, 0, 0.0125), (0.11, 0.08, 0.025), BLUE), _plate(0.01, 0, 0.025, 0.05, 0.03, YELLOW))),
        ObjectSpec("tablet", "black", (
            _box((0, 0, 0.005), (0.112, 0.078, 0.01), (0.25, 0.25, 0.27)), _plate(0, 0, 0.01, 0.098, 0.066, BLACK))),
        ObjectSpec("remote control", "black", (
            _box((0, 0, 0.009), (0.11, 0.04, 0.018), BLACK), _disk(0.04, 0, 0.018, 0.005, RED),
            *[_plate(x, y, 0.018, 0.008, 0.008, GRAY) for x in (-0.03, -0.01, 0.01) for y in (-0.009, 0.009)])),
        ObjectSpec("computer mouse", "gray", (
            _box((0, 0, 0.006), (0.064, 0.036, 0.012), GRAY), _capsule((0, 0, 0.017), 0.016, 0.03, GRAY),
            _plate(0.022, 0, 0.03, 0.012, 0.004, BLACK))),
        ObjectSpec("calculator", "gray", (
            _box((0, 0, 0.007), (0.09, 0.062, 0.014), (0.3, 0.31, 0.33)),
            _plate(0.03, 0, 0.014, 0.022, 0.05, (0.6, 0.7, 0.55)),
            *[_plate(x, y, 0.014, 0.011, 0.011, WHITE) for x in (-0.033, -0.016, 0.001)
              for y in (-0.021, -0.007, 0.007, 0.021)])),
        ObjectSpec("eraser", "pink", (
            _box((0, 0, 0.0075), (0.055, 0.028, 0.015), PINK), _box((-0.012, 0, 0.008), (0.026, 0.03, 0.016), BLUE))),
        ObjectSpec("alarm clock", "red", (
            _cyl((0, -0.006, 0.015), 0.036, 0.03, RED), _disk(0, -0.006, 0.03, 0.03, WHITE),
            _plate(0, 0.0, 0.031, 0.002, 0.02, BLACK), _plate(0.007, -0.006, 0.031, 0.014, 0.002, BLACK),
            _sphere((0.025, 0.031, 0.012), 0.012, SILVER), _sphere((-0.025, 0.031, 0.012), 0.012, SILVER))),
        ObjectSpec("sunglasses", "black", (
            _cyl((0.027, -0.012, 0.005), 0.022, 0.01, BLACK), _cyl((-0.027, -0.012, 0.005), 0.022, 0.01, BLACK),
            _box((0, -0.012, 0.008), (0.016, 0.005, 0.006), BLACK),
            _box((0.05, 0.016, 0.004), (0.005, 0.05, 0.008), BLACK), _box((-0.05, 0.016, 0.004), (0.005, 0.05, 0.008),
                                                                          BLACK))),
        ObjectSpec("sneaker", "blue", (
            _box((0, 0, 0.006), (0.112, 0.046, 0.012), WHITE), _box((-0.012, 0, 0.025), (0.08, 0.04, 0.026), BLUE),
            _capsule((0.035, 0, 0.018), 0.012, 0.012, BLUE, euler=(pi / 2, 0, 0)),
            *[_plate(x, 0, 0.038, 0.004, 0.024, WHITE) for x in (-0.004, 0.008, 0.02)])),
        ObjectSpec("apple", "red", (
            _cyl((0, 0, 0.018), 0.034, 0.036, RED), _sphere((0, 0, 0.036), 0.034, RED),
            _box((0, 0, 0.073), (0.004, 0.004, 0.008), BROWN), _box((0.008, 0.002, 0.07), (0.014, 0.007, 0.002),
                                                                     LEAF, yaw=0.4))),
        ObjectSpec("chocolate bar", "brown", (
            _box((0, 0, 0.006), (0.105, 0.048, 0.012), CHOCOLATE), _box((0.03, 0, 0.0065), (0.046, 0.05, 0.013), RED),
            *[_plate(x, y, 0.012, 0.013, 0.019, (0.42, 0.24, 0.12)) for x in (-0.04, -0.024, -0.008)
              for y in (-0.011, 0.011)])),
        # ------------------------------------------------------------------ evaluation-only objects
        ObjectSpec("hammer", "wood", (
            _box((-0.012, 0, 0.008), (0.09, 0.016, 0.016), WOOD), _box((0.044, 0, 0.01), (0.022, 0.07, 0.02), GRAY))),
        ObjectSpec("screwdriver", "yellow", (
            _box((-0.035, 0, 0.01), (0.046, 0.02, 0.02), YELLOW), _plate(-0.035, 0, 0.02, 0.04, 0.006, RED),
            _box((0.022, 0, 0.0035), (0.068, 0.007, 0.007), SILVER))),
        ObjectSpec("spoon", "silver", (
            _cyl((-0.04, 0, 0.005), 0.018, 0.01, SILVER), _cyl((-0.028, 0, 0.005), 0.016, 0.01, SILVER),
            _box((0.018, 0, 0.005), (0.076, 0.01, 0.01), SILVER))),
        ObjectSpec("butter knife", "silver", (
            _box((-0.025, 0, 0.004), (0.062, 0.018, 0.008), SILVER), _box((0.032, 0, 0.006), (0.052, 0.016, 0.012),
                                                                           BLACK))),
        ObjectSpec("paint brush", "red", (
            _box((0.015, 0, 0.006), (0.08, 0.011, 0.012), RED), _box((-0.032, 0, 0.007), (0.016, 0.017, 0.014),
                                                                      SILVER),
            _box((-0.05, 0, 0.006), (0.02, 0.019, 0.012), CHOCOLATE))),
        ObjectSpec("magnifying glass", "black", (
            *_ring(0.03, 0.007, 0.012, BLACK, centre=(-0.024, 0)), _cyl((-0.024, 0, 0.003), 0.025, 0.006, LIGHT_BLUE),
            _box((0.03, 0, 0.006), (0.048, 0.013, 0.012), BLACK))),
        ObjectSpec("scissors", "orange", (
            *_ring(0.014, 0.005, 0.01, ORANGE, centre=(-0.035, 0.015), segments=6),
            *_ring(0.014, 0.005, 0.01, ORANGE, centre=(-0.035, -0.015), segments=6),
            _box((0.02, 0.004, 0.004), (0.07, 0.008, 0.008), SILVER, yaw=0.08),
            _box((0.02, -0.004, 0.004), (0.07, 0.008, 0.008), SILVER, yaw=-0.08))),
        ObjectSpec("key", "gold", (
            _cyl((-0.025, 0, 0.004), 0.016, 0.008, GOLD), _disk(-0.03, 0, 0.008, 0.004, BLACK),
            _box((0.014, 0, 0.004), (0.05, 0.008, 0.008), GOLD),
            _box((0.025, -0.007, 0.004), (0.006, 0.008, 0.008), GOLD),
            _box((0.035, -0.006, 0.004), (0.006, 0.006, 0.008), GOLD))),
        ObjectSpec("toy bunny", "pink", (_mesh("bunny.obj", "bunny.obj", 0.06, PINK, (0, 0, 0)),)),
        ObjectSpec("puzzle cube", "multicolour", (
            _box((0, 0, 0.025), (0.05, 0.05, 0.05), BLACK),
            *[_plate(0.016 * i, 0.016 * j, 0.05, 0.014, 0.014, c) for (i, j), c in zip(
                [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)],
                (RED, WHITE, BLUE, GREEN, YELLOW, ORANGE, BLUE, RED, WHITE), strict=True)])),
        ObjectSpec("toy train", "blue", (
            _box((0, 0, 0.007), (0.1, 0.04, 0.014), BLACK), _cyl((0.012, 0, 0.03), 0.017, 0.058, BLUE,
                                                                euler=(0, pi / 2, 0)),
            _box((-0.033, 0, 0.028), (0.034, 0.042, 0.042), RED), _cyl((0.03, 0, 0.05), 0.006, 0.012, BLACK))),
        ObjectSpec("toy airplane", "white", (
            _box((0, 0, 0.009), (0.112, 0.018, 0.018), WHITE), _box((0.008, 0, 0.009), (0.03, 0.112, 0.006), BLUE),
            _box((-0.048, 0, 0.017), (0.014, 0.04, 0.005), BLUE), _plate(0.045, 0, 0.018, 0.01, 0.012, LIGHT_BLUE))),
        ObjectSpec("yo-yo", "blue", (
            _cyl((0, 0, 0.006), 0.03, 0.012, BLUE), _cyl((0, 0, 0.015), 0.008, 0.006, WHITE),
            _cyl((0, 0, 0.024), 0.03, 0.012, BLUE), _disk(0, 0, 0.03, 0.01, WHITE))),
        ObjectSpec("starfish", "coral", (
            _cyl((0, 0, 0.006), 0.016, 0.012, CORAL),
            *[_box((0.026 * math.cos(a), 0.026 * math.sin(a), 0.005), (0.05, 0.014, 0.01), CORAL, yaw=a)
              for a in (2 * pi * k / 5 for k in range(5))])),
        ObjectSpec("smartphone", "black", (
            _box((0, 0, 0.0045), (0.076, 0.038, 0.009), BLACK), _plate(0, 0, 0.009, 0.066, 0.033, NAVY))),
        ObjectSpec("pencil", "yellow", (
            _box((0.004, 0, 0.006), (0.09, 0.012, 0.012), YELLOW), _box((0.054, 0, 0.006), (0.01, 0.011, 0.011), PINK),
            _box((0.046, 0, 0.006), (0.006, 0.013, 0.013), SILVER), _box((-0.048, 0, 0.006), (0.014, 0.009, 0.009),
                                                                          WOOD),
            _box((-0.057, 0, 0.006), (0.004, 0.004, 0.004), BLACK))),
        ObjectSpec("stapler", "red", (
            _box((0, 0, 0.005), (0.1, 0.032, 0.01), BLACK), _box((0.006, 0, 0.018), (0.088, 0.026, 0.016), RED))),
        ObjectSpec("lemon", "yellow", (
            _capsule((0, 0, 0.022), 0.022, 0.03, YELLOW), _sphere((0.038, 0, 0.022), 0.008, YELLOW),
            _sphere((-0.038, 0, 0.022), 0.008, YELLOW))),
        ObjectSpec("banana", "yellow", tuple(
            _box((0.052 * math.sin(a), 0.052 * math.cos(a) - 0.04, 0.008), (0.024, 0.018, 0.016),
                 BROWN if abs(a) > 0.9 else YELLOW, yaw=-a)
            for a in np.linspace(-1.0, 1.0, 7))),
    ]
    return {spec.name: _normalised(spec) for spec in objects}


def _normalised(spec: ObjectSpec) -> ObjectSpec:
    """``spec`` with its parts shifted so the footprint is centred on the origin and the bottom is at z = 0."""
    if len(spec.parts) > MAX_PARTS:
        raise ValueError(f"object {spec.name!r} has {len(spec.parts)} parts; PyBullet's shape arrays hold at most "
                         f"{MAX_PARTS}")
    pts = np.concatenate([_part_points(part) for part in spec.parts if part.collide])
    lo, hi = pts.min(0), pts.max(0)
    shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    parts = tuple(replace(part, centre=tuple(float(c) for c in np.asarray(part.centre) + shift))
                  for part in spec.parts)
    return replace(spec, parts=parts)


#: Name -> spec of every object.
OBJECTS: dict[str, ObjectSpec] = _catalogue()
#: Every object name, in catalogue order (the training names, then the evaluation-only ones; the split itself is
#: ``vlarm.tasks.attributes.TRAIN_OBJECTS`` / ``EVAL_OBJECTS``, as ``sim`` knows nothing of tasks).
OBJECT_NAMES: tuple[str, ...] = tuple(OBJECTS)


def object_spec(name: str) -> ObjectSpec:
    """The spec of a named object.

    Raises:
        ValueError: for an unknown name (the message lists the known names).
    """
    if name not in OBJECTS:
        raise ValueError(f"unknown object {name!r}; known objects: {', '.join(OBJECT_NAMES)}")
    return OBJECTS[name]


# ---------------------------------------------------------------------------------------------------------- bodies
def create_object(client: int, name: str, position, yaw: float = 0.0, mass: float = OBJECT_MASS) -> int:
    """Add a named object standing on the table.

    Args:
        client: PyBullet client id.
        name: an object of :data:`OBJECT_NAMES`.
        position: ``(x, y, z)`` of the body frame (footprint centre, bottom), metres.
        yaw: rotation about z, radians.
        mass: kilograms.

    Returns:
        The PyBullet body id (one rigid body; centre of mass at the body frame's origin).

    Raises:
        ValueError: for an unknown name.
    """
    spec = object_spec(name)
    col_parts = [part for part in spec.parts if part.collide]
    col = p.createCollisionShapeArray(**_shape_arrays(col_parts, collision=True), physicsClientId=client)
    vis = p.createVisualShapeArray(**_shape_arrays(spec.parts, collision=False), physicsClientId=client)
    body = p.createMultiBody(mass, col, vis, [float(v) for v in position], p.getQuaternionFromEuler((0, 0, yaw)),
                             physicsClientId=client)
    p.changeDynamics(body, -1, lateralFriction=0.8, rollingFriction=0.001, spinningFriction=0.001,
                     physicsClientId=client)
    return body


def _shape_arrays(parts: list[Part] | tuple[Part, ...], collision: bool) -> dict:
    """Keyword arrays of ``createCollisionShapeArray`` / ``createVisualShapeArray`` for ``parts``."""
    arrays: dict[str, list] = {"shapeTypes": [], "radii": [], "halfExtents": [], "lengths": [], "fileNames": [],
                               "meshScales": []}
    frame = "collisionFrame" if collision else "visualFrame"
    arrays[frame + "Positions"], arrays[frame + "Orientations"] = [], []
    if not collision:
        arrays["rgbaColors"] = []
    data = pybullet_data.getDataPath()
    for part in parts:
        arrays["shapeTypes"].append(_GEOM[part.shape])
        radius = part.dims[0] if part.shape in ("cylinder", "sphere", "capsule") else 0.5
        length = part.dims[1] if part.shape in ("cylinder", "capsule") else 1.0
        half = [d / 2 for d in part.dims] if part.shape == "box" else [0.5, 0.5, 0.5]
        arrays["radii"].append(float(radius))
        arrays["lengths"].append(float(length))
        arrays["halfExtents"].append([float(h) for h in half])
        mesh = "" if part.mesh is None else os.path.join(data, part.mesh[1 if collision else 0])
        arrays["fileNames"].append(mesh)
        arrays["meshScales"].append([float(s) for s in part.dims] if part.shape == "mesh" else [1.0, 1.0, 1.0])
        arrays[frame + "Positions"].append([float(c) for c in part.centre])
        arrays[frame + "Orientations"].append(list(p.getQuaternionFromEuler(part.euler)))
        if not collision:
            arrays["rgbaColors"].append([*part.color, 1.0])
    return arrays


def footprint(name: str) -> tuple[float, float]:
    """``(x, y)`` extent in metres of a named object's zone points (its footprint, body frame).

    Raises:
        ValueError: for an unknown name.
    """
    pts = object_points(name)
    ext = pts.max(0) - pts.min(0)
    return float(ext[0]), float(ext[1])


__all__ = ["MAX_FOOTPRINT", "OBJECTS", "OBJECT_NAMES", "ObjectSpec", "Part", "create_object", "footprint",
           "object_points", "object_spec"]
