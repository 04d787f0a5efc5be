"""Procedural assets built in code: blocks, bowls and the table/workspace.

pybullet_data ships no bowl or suction gripper (REFERENCE.md Sec. 10), so these are compound shapes made of
boxes. Sizes follow Ravens/CLIPort: 4 cm blocks, 12 cm bowls.
"""

from __future__ import annotations

import math

import numpy as np
import pybullet as p

BLOCK_SIZE = 0.04          # edge length, metres
BOWL_RADIUS = 0.06         # outer radius, metres
BOWL_HEIGHT = 0.03         # wall height, metres
BOWL_WALL = 0.006          # wall thickness, metres
BOWL_SEGMENTS = 12
#: PyBullet's ``createVisualShapeArray`` crashes the process (segfault) with more than 16 shapes in one body.
MAX_COMPOUND_PARTS = 16


def _rgba(color: tuple[float, float, float]) -> list[float]:
    return [float(color[0]), float(color[1]), float(color[2]), 1.0]


def create_block(client: int, position, orientation, color, size: float = BLOCK_SIZE,
                 mass: float = 0.05) -> int:
    """Add a cube.

    Args:
        client: PyBullet client id.
        position: xyz of the centre in metres.
        orientation: quaternion xyzw.
        color: RGB in [0, 1].
        size: edge length in metres.
        mass: kilograms.

    Returns:
        The PyBullet body id.
    """
    half = [size / 2] * 3
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=_rgba(color), physicsClientId=client)
    body = p.createMultiBody(mass, col, vis, position, orientation, physicsClientId=client)
    p.changeDynamics(body, -1, lateralFriction=0.8, physicsClientId=client)
    return body


def create_box(client: int, position, orientation, size, color, mass: float = 0.05, friction: float = 0.8) -> int:
    """Add a cuboid (a block of any size, a flat zone marker, a box wall).

    Args:
        client: PyBullet client id.
        position: xyz of the centre in metres.
        orientation: quaternion xyzw.
        size: ``(x, y, z)`` edge lengths in metres.
        color: RGB in [0, 1].
        mass: kilograms; 0 makes a fixed body.
        friction: lateral friction coefficient.

    Returns:
        The PyBullet body id.
    """
    half = [float(s) / 2 for s in size]
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=_rgba(color), physicsClientId=client)
    body = p.createMultiBody(mass, col, vis, position, orientation, physicsClientId=client)
    p.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=client)
    return body


def create_compound(client: int, position, orientation, parts, mass: float = 0.05, friction: float = 0.8,
                    collision: bool = True) -> int:
    """Add one rigid body made of boxes (letters, rings, stands, kits, boxes with walls).

    Args:
        client: PyBullet client id.
        position: xyz of the body frame in metres.
        orientation: quaternion xyzw.
        parts: sequence of ``(centre xyz, size xyz, yaw radians, rgb)`` in the body frame, metres.
        mass: kilograms; 0 makes a fixed body.
        friction: lateral friction coefficient.
        collision: False for a visual-only body (zone markers, hole outlines).

    Returns:
        The PyBullet body id.

    Raises:
        ValueError: for an empty ``parts`` or more than :data:`MAX_COMPOUND_PARTS` of them.
    """
    if not parts:
        raise ValueError("a compound body needs at least one part")
    if len(parts) > MAX_COMPOUND_PARTS:
        raise ValueError(f"a compound body has at most {MAX_COMPOUND_PARTS} parts (PyBullet's visual shape arrays "
                         f"crash beyond that), got {len(parts)}; merge parts or build several bodies")
    half = [[float(v) / 2 for v in size] for _, size, _, _ in parts]
    pos = [[float(v) for v in centre] for centre, _, _, _ in parts]
    orn = [list(p.getQuaternionFromEuler((0, 0, float(yaw)))) for _, _, yaw, _ in parts]
    col = -1
    if collision:
        col = p.createCollisionShapeArray([p.GEOM_BOX] * len(parts), halfExtents=half, collisionFramePositions=pos,
                                          collisionFrameOrientations=orn, physicsClientId=client)
    vis = p.createVisualShapeArray([p.GEOM_BOX] * len(parts), halfExtents=half, visualFramePositions=pos,
                                   visualFrameOrientations=orn, rgbaColors=[_rgba(c) for *_, c in parts],
                                   physicsClientId=client)
    body = p.createMultiBody(mass, col, vis, position, orientation, physicsClientId=client)
    if collision:
        p.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=client)
    return body


def create_container(client: int, position, orientation, size, color, wall: float = 0.005,
                     wall_height: float = 0.02) -> int:
    """Add a fixed open-top box (Ravens' brown packing box): a thin floor and four low walls.

    Args:
        client: PyBullet client id.
        position: xyz of the floor centre on the table, metres.
        orientation: quaternion xyzw.
        size: ``(x, y)`` inner footprint in metres (objects packed inside must fit it).
        color: RGB in [0, 1].
        wall: wall thickness in metres.
        wall_height: wall height in metres (low, so the suction tool reaches inside).

    Returns:
        The PyBullet body id (fixed: mass 0).
    """
    sx, sy = float(size[0]), float(size[1])
    floor = 0.002
    parts = [((0, 0, floor / 2), (sx + 2 * wall, sy + 2 * wall, floor), 0.0, color)]
    for sign in (-1, 1):
        parts.append(((sign * (sx + wall) / 2, 0, wall_height / 2), (wall, sy + 2 * wall, wall_height), 0.0, color))
        parts.append(((0, sign * (sy + wall) / 2, wall_height / 2), (sx, wall, wall_height), 0.0, color))
    return create_compound(client, position, orientation, parts, mass=0.0)


def box_points(size, spacing: float = 0.005) -> np.ndarray:
    """Points on a regular grid filling a box centred on the origin (the 'zone' metric's object points).

    Args:
        size: ``(x, y, z)`` edge lengths in metres.
        spacing: grid step in metres (at least 2 points per axis).

    Returns:
        ``(N, 3)`` float32 points in the box frame, metres.
    """
    axes = [np.linspace(-s / 2, s / 2, max(2, int(round(s / spacing)) + 1)) for s in size]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid.astype(np.float32)


def create_bowl(client: int, position, orientation, color, fixed: bool = False,
                radius: float = BOWL_RADIUS, height: float = BOWL_HEIGHT) -> int:
    """Add an open bowl: a flat base and a ring of wall boxes (a compound collision shape).

    Args:
        client: PyBullet client id.
        position: xyz of the base centre on the table, metres.
        orientation: quaternion xyzw.
        color: RGB in [0, 1].
        fixed: if True the bowl has a fixed base (CLIPort's target bowls); else it can be pushed.
        radius: outer radius in metres.
        height: wall height in metres.

    Returns:
        The PyBullet body id.
    """
    half_extents, positions, orientations = [], [], []
    base_t = 0.004
    half_extents.append([radius * 0.8, radius * 0.8, base_t / 2])
    positions.append([0.0, 0.0, base_t / 2])
    orientations.append([0.0, 0.0, 0.0, 1.0])
    seg_len = 2 * radius * math.tan(math.pi / BOWL_SEGMENTS) + BOWL_WALL
    for k in range(BOWL_SEGMENTS):
        a = 2 * math.pi * k / BOWL_SEGMENTS
        r = radius - BOWL_WALL / 2
        half_extents.append([BOWL_WALL / 2, seg_len / 2, height / 2])
        positions.append([r * math.cos(a), r * math.sin(a), height / 2])
        orientations.append(list(p.getQuaternionFromEuler((0, 0, a))))
    col = p.createCollisionShapeArray([p.GEOM_BOX] * len(half_extents), halfExtents=half_extents,
                                      collisionFramePositions=positions,
                                      collisionFrameOrientations=orientations, physicsClientId=client)
    rgba = [_rgba(color)] * len(half_extents)
    vis = p.createVisualShapeArray([p.GEOM_BOX] * len(half_extents), halfExtents=half_extents,
                                   visualFramePositions=positions, visualFrameOrientations=orientations,
                                   rgbaColors=rgba, physicsClientId=client)
    mass = 0.0 if fixed else 0.2
    body = p.createMultiBody(mass, col, vis, position, orientation, physicsClientId=client)
    return body


def create_table(client: int, bounds: np.ndarray) -> tuple[int, int]:
    """Add the ground plane and a thin dark workspace slab matching ``bounds`` (visual only).

    Returns:
        ``(plane_id, workspace_id)`` body ids.
    """
    plane_col = p.createCollisionShape(p.GEOM_PLANE, physicsClientId=client)
    plane_vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[2, 2, 0.0005], rgbaColor=[0.55, 0.5, 0.45, 1],
                                    physicsClientId=client)
    plane = p.createMultiBody(0, plane_col, plane_vis, [0, 0, -0.0005], physicsClientId=client)
    p.changeDynamics(plane, -1, lateralFriction=0.8, physicsClientId=client)
    cx, cy = bounds[0].mean(), bounds[1].mean()
    hx, hy = (bounds[0, 1] - bounds[0, 0]) / 2, (bounds[1, 1] - bounds[1, 0]) / 2
    ws_vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[hx, hy, 0.0005], rgbaColor=[0.2, 0.2, 0.2, 1],
                                 physicsClientId=client)
    workspace = p.createMultiBody(0, -1, ws_vis, [cx, cy, 0.0], physicsClientId=client)
    return plane, workspace
