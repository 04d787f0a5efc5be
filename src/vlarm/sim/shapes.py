"""Ravens' 20 kit shapes, built in code as thin flat rigid bodies made of boxes, and their kit holes.

Ravens (Zeng et al. CoRL 2020, ``assembling_kits.py``) loads the shapes as meshes (``kitting/00.obj`` ..
``19.obj``); CLIPort (Shridhar et al. CoRL 2021, Appendix A) names them and splits them: train on ids 0-13,
evaluate unseen shapes on 14-19. The meshes are not available here, so each shape is a union of boxes
(``vlarm.sim.assets.create_compound``) whose top-down outline reads as its name. By id (the names live in
``vlarm.tasks.attributes.KIT_SHAPES``; ``sim`` does not import ``tasks``):

    0 letter R   1 letter A   2 triangle   3 square   4 plus       5 letter T   6 diamond   7 pentagon
    8 rectangle  9 flower     10 star      11 circle  12 letter G  13 letter V  14 letter E 15 letter L
    16 ring      17 hexagon   18 heart     19 letter M

Every shape is designed in a unit frame whose origin is its centre of rotational symmetry (the bounding-box
centre for letters and the heart) and which it never leaves the unit circle of; ``size`` scales that circle to a
diameter in metres. Letters stand upright along +y. Regular polygons are exact unions of boxes (an odd n-gon is n
boxes, each spanning one edge and reaching the centre; an even n-gon is n/2 boxes, each spanning two opposite
edges); shapes with acute corners (triangle, diamond, star) add thin boxes flush with their slanted edges to a
core of strips or axis boxes, which leaves only a few millimetres off each sharp corner. A shape has at most
:data:`MAX_PARTS` boxes (PyBullet's limit for one body's visual shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vlarm.sim.assets import MAX_COMPOUND_PARTS, create_compound

#: Number of kit shapes (Ravens ``kitting/00.obj`` .. ``19.obj``).
N_SHAPES = 20
#: Default footprint diameter, metres: every shape fits a circle of this diameter around its origin (Ravens'
#: kit holes sit 9 cm apart, so neighbouring shapes never overlap).
SHAPE_SIZE = 0.08
#: Default thickness of a shape, metres (a thin flat piece, as Ravens' kit shapes).
SHAPE_HEIGHT = 0.015
#: Colour of the kit holes (Ravens fills the hole template with grey 0.2).
HOLE_COLOR = (0.2, 0.2, 0.2)
#: Thickness of a hole silhouette, metres (visual only).
HOLE_THICKNESS = 0.001

#: Yaw symmetry of each shape in radians (CLIPort ``assembling_kits_seq.py``): a rotation by this angle maps the
#: shape onto itself; ``2 pi`` means no symmetry, ``0`` means any rotation (circle, ring).
SYMMETRY: tuple[float, ...] = (
    2 * np.pi, 2 * np.pi, 2 * np.pi / 3, np.pi / 2, np.pi / 2, 2 * np.pi, np.pi, 2 * np.pi / 5, np.pi, np.pi / 2,
    2 * np.pi / 5, 0.0, 2 * np.pi, 2 * np.pi, 2 * np.pi, 2 * np.pi, 0.0, 2 * np.pi / 6, 2 * np.pi, 2 * np.pi)

#: At most this many boxes per shape: PyBullet (3.2.x) crashes in ``createVisualShapeArray`` on more than 16.
MAX_PARTS = MAX_COMPOUND_PARTS

#: A part in the unit frame: ``(cx, cy, length along yaw, width across, yaw radians)``.
Part = tuple[float, float, float, float, float]

STROKE = 0.36          # letter stroke width, unit frame (1.44 cm at the default size)


# ---------------------------------------------------------------------------------------------- primitives
def _bar(x0: float, y0: float, x1: float, y1: float, width: float = STROKE) -> list[Part]:
    """A straight stroke from (x0, y0) to (x1, y1)."""
    return [((x0 + x1) / 2, (y0 + y1) / 2, math.hypot(x1 - x0, y1 - y0), width, math.atan2(y1 - y0, x1 - x0))]


def _regular(n: int, radius: float, rotation: float = 0.0, cx: float = 0.0, cy: float = 0.0) -> list[Part]:
    """An exact regular n-gon (circumradius ``radius``, first vertex at ``rotation``) as a union of boxes.

    The triangle (centre, V_i, V_i+1) lies inside the box spanning edge i from the edge to the centre (n odd,
    n >= 5) and inside the box spanning edges i and i + n/2 (n even), and those boxes lie inside the polygon.
    """
    if n < 4:
        raise ValueError(f"_regular builds n-gons with n >= 4 exactly, got n={n}; use _convex for triangles")
    apothem, side = radius * math.cos(math.pi / n), 2 * radius * math.sin(math.pi / n)
    parts = []
    for i in range(n if n % 2 else n // 2):
        theta = rotation + 2 * math.pi * (i + 0.5) / n       # direction of edge i's midpoint
        if n % 2:
            parts.append((cx + apothem / 2 * math.cos(theta), cy + apothem / 2 * math.sin(theta), apothem, side,
                          theta))
        else:
            parts.append((cx, cy, 2 * apothem, side, theta))
    return parts


def _chord(verts: np.ndarray, axis: np.ndarray, normal: np.ndarray, t: float) -> tuple[float, float] | None:
    """Extent along ``axis`` of a convex polygon's cut by the line ``dot(x, normal) = t`` (None if it misses)."""
    eps = 1e-9
    values = []
    for a, b in zip(verts, np.roll(verts, -1, axis=0), strict=True):
        ta, tb = float(a @ normal), float(b @ normal)
        if abs(tb - ta) < eps:                 # an edge parallel to the cut: counts when it lies on it
            if abs(ta - t) < eps:
                values += [float(a @ axis), float(b @ axis)]
        elif min(ta, tb) - eps <= t <= max(ta, tb) + eps:
            x = a + (b - a) * float(np.clip((t - ta) / (tb - ta), 0.0, 1.0))
            values.append(float(x @ axis))
    return (min(values), max(values)) if values else None


def _convex(verts, strips: int, axis=None) -> list[Part]:
    """A convex polygon (vertices counter-clockwise) as ``strips`` strips along ``axis`` plus edge boxes.

    Each strip spans the polygon's narrower chord at its two sides (so it stays inside); a thin box flush with
    every edge not parallel to ``axis``, deep enough to cover the strips' steps and shortened at acute corners,
    straightens the outline. Default axis: the longest edge.
    """
    verts = np.asarray(verts, dtype=float)
    edges = np.roll(verts, -1, axis=0) - verts
    if axis is None:
        axis = edges[int(np.argmax(np.linalg.norm(edges, axis=1)))]
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    normal = np.array([-axis[1], axis[0]])
    t_all = verts @ normal
    t_lo, t_hi = float(t_all.min()), float(t_all.max())
    step = (t_hi - t_lo) / strips
    yaw = math.atan2(axis[1], axis[0])
    parts: list[Part] = []
    for j in range(strips):
        t0, t1 = t_lo + j * step, t_lo + (j + 1) * step
        c0, c1 = _chord(verts, axis, normal, t0), _chord(verts, axis, normal, t1)
        if c0 is None or c1 is None:
            continue
        a, b = max(c0[0], c1[0]), min(c0[1], c1[1])
        if b - a > 1e-6:
            centre = axis * (a + b) / 2 + normal * (t0 + t1) / 2
            parts.append((float(centre[0]), float(centre[1]), b - a, step, yaw))
    directions = edges / np.linalg.norm(edges, axis=1, keepdims=True)
    slant = np.abs(directions @ normal)            # sine of each edge's angle to the strips
    depth = 1.2 * step * float(slant.max())
    n = len(verts)
    for i in range(n):
        if slant[i] < 1e-6:
            continue
        e, length = directions[i], float(np.linalg.norm(edges[i]))
        inward = np.array([-e[1], e[0]])
        cut = []
        for k, other in ((i - 1, -directions[i - 1]), ((i + 1) % n, directions[(i + 1) % n])):
            # interior angle at this edge's end between the edge and its neighbour
            ref = e if k == i - 1 else -e
            angle = math.acos(float(np.clip(ref @ other, -1.0, 1.0)))
            cut.append(depth / math.tan(angle) if angle < math.pi / 2 else 0.0)
        span = length - cut[0] - cut[1]
        if span <= 1e-6:
            continue
        centre = verts[i] + e * (cut[0] + span / 2) + inward * depth / 2
        parts.append((float(centre[0]), float(centre[1]), span, depth, math.atan2(e[1], e[0])))
    return parts


def _polyline(points, width: float = STROKE) -> list[Part]:
    """A stroke along a polyline with mitred joins: each segment runs on by ``width / 2 * tan(turn / 2)``."""
    pts = [np.asarray(q, dtype=float) for q in points]
    dirs = [(b - a) / np.linalg.norm(b - a) for a, b in zip(pts[:-1], pts[1:], strict=True)]
    parts: list[Part] = []
    for i, (a, b) in enumerate(zip(pts[:-1], pts[1:], strict=True)):
        ext = []
        for j in (i - 1, i + 1):
            if 0 <= j < len(dirs):
                turn = math.acos(float(np.clip(dirs[i] @ dirs[j], -1.0, 1.0)))
                ext.append(width / 2 * math.tan(turn / 2))
            else:
                ext.append(0.0)
        a2, b2 = a - dirs[i] * ext[0], b + dirs[i] * ext[1]
        parts += _bar(float(a2[0]), float(a2[1]), float(b2[0]), float(b2[1]), width)
    return parts


def _polygon_vertices(n: int, radius: float, rotation: float = math.pi / 2) -> np.ndarray:
    """Vertices (counter-clockwise) of a regular n-gon, the first at angle ``rotation``."""
    angles = rotation + 2 * math.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


# ---------------------------------------------------------------------------------------------- the shapes
def _letter_r() -> list[Part]:
    w, h, x, c = STROKE, 0.85, 0.5, 0.2
    X, H, m = x - w / 2, h - w / 2, 0.0
    return (_polyline([(-X, -h), (-X, H), (X - c, H), (X, H - c), (X, m + c), (X - c, m), (-X, m)])
            + _bar(-0.05, m, X, -h + 0.06, w))                                # the leg


def _letter_a() -> list[Part]:
    w = STROKE + 0.02
    return (_bar(-0.5, -0.76, -0.05, 0.8, w) + _bar(0.5, -0.76, 0.05, 0.8, w)
            + [(0.0, 0.72, 0.3, 0.22, 0.0)]                                  # apex
            + _bar(-0.36, -0.3, 0.36, -0.3, 0.34))                           # crossbar


def _triangle() -> list[Part]:
    return _convex(_polygon_vertices(3, 1.0), strips=10, axis=(1.0, 0.0))


def _square() -> list[Part]:
    side = 2 * 0.98 / math.sqrt(2)
    return [(0.0, 0.0, side, side, 0.0)]


def _plus() -> list[Part]:
    return _bar(-0.97, 0.0, 0.97, 0.0, 0.44) + _bar(0.0, -0.97, 0.0, 0.97, 0.44)


def _letter_t() -> list[Part]:
    w, h = STROKE, 0.85
    return _bar(-0.52, h - w / 2, 0.52, h - w / 2, w) + _bar(0.0, -h, 0.0, h - w, w)


def _diamond() -> list[Part]:
    return _convex([(0.0, -0.98), (0.58, 0.0), (0.0, 0.98), (-0.58, 0.0)], strips=10, axis=(1.0, 0.0))


def _pentagon() -> list[Part]:
    return _regular(5, 0.98, rotation=math.pi / 2)


def _rectangle() -> list[Part]:
    return [(0.0, 0.0, 1.76, 0.9, 0.0)]


def _flower() -> list[Part]:
    # four round petals, each three crossed boxes (a stepped ellipse), around an octagonal heart
    parts = _regular(8, 0.4, rotation=math.pi / 8)
    for k in range(4):
        a = k * math.pi / 2
        parts += [(0.58 * math.cos(a), 0.58 * math.sin(a), length, width, a)
                  for length, width in ((0.78, 0.36), (0.62, 0.54), (0.4, 0.66))]
    return parts


def _star() -> list[Part]:
    # Each point: a box along its axis from the centre, and a box flush with each of its sides, the sides run on
    # through the inner corners to the centre line (there they lie inside the neighbouring points).
    tip, inner = 0.98, 0.45
    base, half = inner * math.cos(math.pi / 5), inner * math.sin(math.pi / 5)   # a point's base: distance, half-width
    slope = half / (tip - base)                                  # half-width lost per unit of distance
    apex = 2 * math.atan(slope)                                  # the point's tip angle
    depth, width = 0.19, 0.2                                     # side boxes' depth, axis box's half-width
    side = math.hypot(tip, slope * tip)                          # tip to the centre line, along a side
    cut = depth / math.tan(apex)
    parts = []
    for k in range(5):
        a = math.pi / 2 + 2 * math.pi * k / 5
        u, n = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        reach = tip - width / slope                            # where the point is as narrow as the axis box
        parts.append((float(u[0] * reach / 2), float(u[1] * reach / 2), reach, 2 * width, a))
        for sign in (-1, 1):
            t, b = u * tip, sign * n * slope * tip                 # tip, and where the side meets the centre line
            d = (b - t) / side                                     # along the side, tip to centre line
            normal = sign * np.array([-d[1], d[0]])                # across the side, into the point
            mid = t + d * (cut + (side - cut) / 2) + normal * depth / 2
            parts.append((float(mid[0]), float(mid[1]), side - cut, depth, math.atan2(d[1], d[0])))
    return parts


def _circle() -> list[Part]:
    return _regular(24, 0.98)


def _letter_g() -> list[Part]:
    w, h, x, c = STROKE, 0.85, 0.5, 0.25
    X, H = x - w / 2, h - w / 2
    return _polyline([(x, H), (-X + c, H), (-X, H - c), (-X, -H + c), (-X + c, -H), (X - c, -H), (X, -H + c),
                      (X, 0.02), (0.0, 0.02)])


def _letter_v() -> list[Part]:
    w = STROKE - 0.02
    return (_bar(-0.44, 0.82, -0.04, -0.8, w) + _bar(0.44, 0.82, 0.04, -0.8, w)
            + [(0.0, -0.75, 0.24, 0.2, 0.0)])                                 # the point


def _letter_e() -> list[Part]:
    w, h, x = STROKE, 0.85, 0.5
    return (_bar(-x + w / 2, -h, -x + w / 2, h, w) + _bar(-x, h - w / 2, x, h - w / 2, w)
            + _bar(-x, 0.0, x - 0.1, 0.0, w) + _bar(-x, -h + w / 2, x, -h + w / 2, w))


def _letter_l() -> list[Part]:
    w, h, x = STROKE, 0.85, 0.5
    return _bar(-x + w / 2, -h, -x + w / 2, h, w) + _bar(-x, -h + w / 2, x, -h + w / 2, w)


def _ring() -> list[Part]:
    n, outer, band = 16, 0.98, 0.4
    apothem, side = outer * math.cos(math.pi / n), 2 * outer * math.sin(math.pi / n)
    parts = []
    for i in range(n):
        theta = 2 * math.pi * i / n
        r = apothem - band / 2
        parts.append((r * math.cos(theta), r * math.sin(theta), band, side, theta))
    return parts


def _hexagon() -> list[Part]:
    return _regular(6, 0.75)


def _heart() -> list[Part]:
    # a square standing on a corner, with a disc on each of its two upper edges
    a, drop = 1.02, 0.07
    lobes = []
    for sign in (-1, 1):
        lobes += _regular(12, a / 2, cx=sign * a / (2 * math.sqrt(2)), cy=-drop + a / (2 * math.sqrt(2)))
    return [(0.0, -drop, a, a, math.pi / 4)] + lobes


def _letter_m() -> list[Part]:
    w, h, x = STROKE - 0.04, 0.79, 0.6
    return (_bar(-x + w / 2, -h, -x + w / 2, h, w) + _bar(x - w / 2, -h, x - w / 2, h, w)
            + _bar(-x + w / 2, h - 0.12, 0.0, -0.3, w) + _bar(x - w / 2, h - 0.12, 0.0, -0.3, w)
            + [(0.0, -0.3, 0.2, 0.22, 0.0)])


_BUILDERS = (_letter_r, _letter_a, _triangle, _square, _plus, _letter_t, _diamond, _pentagon, _rectangle, _flower,
             _star, _circle, _letter_g, _letter_v, _letter_e, _letter_l, _ring, _hexagon, _heart, _letter_m)


# ---------------------------------------------------------------------------------------------- public API
def check_shape(shape: int) -> int:
    """Return ``shape`` as an int if it is a kit shape id (0-19); raise ValueError naming the valid ids."""
    if isinstance(shape, bool) or not isinstance(shape, (int, np.integer)) or not 0 <= int(shape) < N_SHAPES:
        raise ValueError(f"unknown kit shape {shape!r}; valid shape ids: 0-{N_SHAPES - 1} "
                         f"(names: vlarm.tasks.attributes.KIT_SHAPES)")
    return int(shape)


def shape_parts(shape: int, size: float = SHAPE_SIZE) -> list[tuple[tuple[float, float], tuple[float, float], float]]:
    """The boxes making up a kit shape's top-down outline, in the shape frame.

    Args:
        shape: kit shape id, 0-19 (module docstring).
        size: footprint diameter in metres: the shape lies within a circle of diameter ``size`` around its origin.

    Returns:
        A list of ``((x, y) centre, (length, width) size, yaw)``: metres and radians, the box's length along
        its yaw.

    Raises:
        ValueError: for an unknown shape id or a non-positive size.
    """
    shape = check_shape(shape)
    if not size > 0:
        raise ValueError(f"a shape's size is a positive diameter in metres, got {size!r}")
    s = size / 2
    return [((cx * s, cy * s), (length * s, width * s), yaw) for cx, cy, length, width, yaw in _BUILDERS[shape]()]


def _part_corners(parts) -> np.ndarray:
    """``(4 * len(parts), 2)`` corners of ``shape_parts`` boxes."""
    corners = []
    for (cx, cy), (length, width), yaw in parts:
        c, s = math.cos(yaw), math.sin(yaw)
        for u, v in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            dx, dy = u * length / 2, v * width / 2
            corners.append((cx + c * dx - s * dy, cy + s * dx + c * dy))
    return np.asarray(corners)


def footprint_radius(shape: int, size: float = SHAPE_SIZE) -> float:
    """Distance in metres from a shape's origin to its farthest point (at most ``size / 2``).

    Raises:
        ValueError: for an unknown shape id or a non-positive size.
    """
    return float(np.linalg.norm(_part_corners(shape_parts(shape, size)), axis=1).max())


def footprint(shape: int, size: float = SHAPE_SIZE, pixel: float = 0.001, yaw: float = 0.0) -> np.ndarray:
    """Rasterised top-down mask of a shape, rotated by ``yaw``, over the square ``[-size/2, size/2]^2``.

    Args:
        shape: kit shape id, 0-19.
        size: footprint diameter, metres.
        pixel: pixel edge, metres; a pixel is set when its centre lies in a part.
        yaw: rotation of the shape about its origin, radians.

    Returns:
        ``(n, n)`` bool mask, ``n = ceil(size / pixel)``; row index grows with y, column index with x.

    Raises:
        ValueError: for an unknown shape id, a non-positive size or pixel.
    """
    if not pixel > 0:
        raise ValueError(f"pixel must be a positive length in metres, got {pixel!r}")
    n = int(math.ceil(size / pixel))
    coords = (np.arange(n) + 0.5) * pixel - n * pixel / 2
    x, y = np.meshgrid(coords, coords)
    c, s = math.cos(-yaw), math.sin(-yaw)
    x, y = c * x - s * y, s * x + c * y                       # pixel centres in the shape frame
    mask = np.zeros((n, n), dtype=bool)
    for (cx, cy), (length, width), part_yaw in shape_parts(shape, size):
        pc, ps = math.cos(part_yaw), math.sin(part_yaw)
        u, v = (x - cx) * pc + (y - cy) * ps, -(x - cx) * ps + (y - cy) * pc
        mask |= (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)
    return mask


def shape_points(shape: int, size: float = SHAPE_SIZE, height: float = SHAPE_HEIGHT,
                 spacing: float = 0.005) -> np.ndarray:
    """Points filling a shape's volume on a regular grid, in the body frame (the 'zone' metric's object points).

    Args:
        shape: kit shape id, 0-19.
        size: footprint diameter, metres.
        height: thickness, metres (the body frame's origin is the slab's centre).
        spacing: grid step, metres.

    Returns:
        ``(N, 3)`` float32 points, metres, one per footprint cell at the bottom and the top face.

    Raises:
        ValueError: for an unknown shape id or non-positive lengths.
    """
    mask = footprint(shape, size, spacing)
    n = mask.shape[0]
    coords = (np.arange(n) + 0.5) * spacing - n * spacing / 2
    rows, cols = np.nonzero(mask)
    xy = np.stack([coords[cols], coords[rows]], axis=1)
    layers = [np.concatenate([xy, np.full((len(xy), 1), z)], axis=1) for z in (-height / 2, height / 2)]
    return np.concatenate(layers).astype(np.float32)


@dataclass
class ShapeBody:
    """A kit shape added to a scene.

    Attributes:
        body: PyBullet body id (origin at the slab's centre, at the shape's origin).
        points: ``(N, 3)`` float32 points in the body frame, metres (:func:`shape_points`).
        radius: footprint radius, metres (:func:`footprint_radius`).
        symmetry: yaw symmetry in radians (:data:`SYMMETRY`).
    """

    body: int
    points: np.ndarray
    radius: float
    symmetry: float


def _compound_parts(shape: int, size: float, z: float, thickness: float, color) -> list:
    return [((cx, cy, z), (length, width, thickness), yaw, color)
            for (cx, cy), (length, width), yaw in shape_parts(shape, size)]


def create_shape(client: int, shape: int, pose, color, size: float = SHAPE_SIZE, height: float = SHAPE_HEIGHT,
                 mass: float = 0.05) -> ShapeBody:
    """Add a kit shape resting with its bottom at ``pose``'s z (Ravens ``kitting/object-template.urdf``).

    Args:
        client: PyBullet client id.
        shape: kit shape id, 0-19 (module docstring).
        pose: ``(position xyz metres, quaternion xyzw)``; z is the height of the surface it rests on.
        color: RGB in [0, 1].
        size: footprint diameter, metres.
        height: thickness, metres.
        mass: kilograms.

    Returns:
        A :class:`ShapeBody`.

    Raises:
        ValueError: for an unknown shape id or non-positive lengths.
    """
    if not height > 0:
        raise ValueError(f"a shape's height must be positive metres, got {height!r}")
    position = np.asarray(pose[0], dtype=np.float64) + np.array([0.0, 0.0, height / 2])
    body = create_compound(client, position, pose[1], _compound_parts(shape, size, 0.0, height, color), mass=mass)
    return ShapeBody(body, shape_points(shape, size, height), footprint_radius(shape, size), SYMMETRY[shape])


def create_hole(client: int, shape: int, pose, size: float = SHAPE_SIZE, color=HOLE_COLOR,
                thickness: float = HOLE_THICKNESS) -> int:
    """Add a kit hole: a dark, visual-only silhouette of a shape lying at ``pose`` (Ravens' kit holes).

    The silhouette has no collision shape, so a shape placed "in" it rests on the surface below.

    Args:
        client: PyBullet client id.
        shape: kit shape id, 0-19.
        pose: ``(position xyz metres, quaternion xyzw)``; z is the surface the silhouette lies on.
        size: footprint diameter of the shape that fits, metres.
        color: RGB in [0, 1].
        thickness: silhouette thickness, metres.

    Returns:
        The PyBullet body id (fixed, visual only).

    Raises:
        ValueError: for an unknown shape id or non-positive lengths.
    """
    if not thickness > 0:
        raise ValueError(f"a hole's thickness must be positive metres, got {thickness!r}")
    parts = _compound_parts(shape, size, thickness / 2, thickness, color)
    return create_compound(client, pose[0], pose[1], parts, mass=0.0, collision=False)


__all__ = ["HOLE_COLOR", "MAX_PARTS", "N_SHAPES", "SHAPE_HEIGHT", "SHAPE_SIZE", "SYMMETRY", "ShapeBody", "check_shape",
           "create_hole", "create_shape", "footprint", "footprint_radius", "shape_parts", "shape_points"]
