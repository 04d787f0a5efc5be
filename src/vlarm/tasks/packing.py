"""Shared pieces of the packing tasks: the brown box, its zone, where things go inside it, and the box's words.

CLIPort's packing tasks (Shridhar et al. CoRL 2021, Appendix A; Ravens ``PackingBoxes``, Zeng et al. CoRL 2020)
put a fixed brown container on the table and judge a goal by the 'zone' metric: the share of an object's points
inside the container's footprint. Two ways to fill it are used here:

- :func:`split_cells`: Ravens' k-d split of the box floor into cells of at least ``min_dim`` separated by
  ``margin`` (packing-boxes-pairs sizes its blocks to these cells);
- :func:`shelf_layout`: rows of given footprints with a clearance around each (the named-object tasks, whose
  objects have fixed sizes, get one slot each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vlarm.sim import Scene
from vlarm.sim.assets import create_container
from vlarm.sim.transforms import Pose, multiply, yaw_to_quat
from vlarm.tasks.attributes import COLORS
from vlarm.tasks.base import Task
from vlarm.tasks.language import Slot, phrases

BOX_COLOR = "brown"
BOX_WALL = 0.005          # wall thickness of the brown box, metres (``create_container``)
BOX_HEIGHT = 0.05         # zone height of the box, metres (CLIPort's zone size z); the zone test uses xy only

#: Verbs and prepositions of "pack ... in the brown box" (CLIPort's templates and the usual paraphrases).
PACK_VERBS: tuple[str, ...] = ("pack", "put", "place", "move")
INTO: tuple[str, ...] = ("in", "into", "inside")


def pack_slots(preposition: str = "preposition") -> tuple[Slot, ...]:
    """The grammar slots of "in the brown box": a preposition, an optional 'brown', then 'box' (or 'container')."""
    return (
        Slot(preposition, phrases(*INTO, meaning=""), f"known prepositions: {', '.join(INTO)}", structural=True),
        Slot("box colour", phrases("brown", meaning=""), "the box is brown", determiners=True, optional=True),
        Slot("target", {"box": "box", "container": "box"}, "this task knows: the brown box", determiners=True),
    )


def action_slot() -> Slot:
    """The grammar slot of the verb ("pack", "put", "place", "move")."""
    return Slot("action", phrases(*PACK_VERBS, meaning=""), f"known actions: {', '.join(PACK_VERBS)}",
                structural=True)


@dataclass
class Box:
    """The brown box of one episode.

    Attributes:
        body: PyBullet body id (fixed).
        pose: pose of its floor centre on the table.
        size: ``(x, y)`` inner footprint in metres (the zone).
    """

    body: int
    pose: Pose
    size: tuple[float, float]

    @property
    def zone(self) -> tuple[Pose, tuple[float, float, float]]:
        """The 'zone' metric's ``(pose, (x, y, z) size)`` of the box's inside."""
        return self.pose, (self.size[0], self.size[1], BOX_HEIGHT)

    def target(self, xy, yaw: float = 0.0) -> Pose:
        """World pose of a point ``xy`` (metres, box frame) on the box floor, with ``yaw`` relative to the box."""
        return multiply(self.pose, (np.array([float(xy[0]), float(xy[1]), 0.0]), yaw_to_quat(yaw)))


def add_box(task: Task, scene: Scene, rng: np.random.Generator, size, placed: list) -> Box | None:
    """Put a brown box of inner footprint ``size`` (metres) at a free table pose (random yaw).

    The footprint radius used for sampling is the half-diagonal of the outer footprint, so the whole box lies in the
    workspace.

    Returns:
        The :class:`Box`, or None when no free pose was found (``Task.sample_pose``'s bounded attempts).
    """
    sx, sy = float(size[0]), float(size[1])
    radius = 0.5 * math.hypot(sx + 2 * BOX_WALL, sy + 2 * BOX_WALL)
    pose = task.sample_pose(rng, radius, placed)
    if pose is None:
        return None
    body = create_container(scene.client, pose[0], pose[1], (sx, sy), COLORS[BOX_COLOR], wall=BOX_WALL)
    scene.add_object(body, "box", BOX_COLOR, (sx + 2 * BOX_WALL, sy + 2 * BOX_WALL, BOX_HEIGHT), fixed=True)
    return Box(body, pose, (sx, sy))


def split_cells(rng: np.random.Generator, size, min_dim: float, margin: float = 0.01) -> list[np.ndarray]:
    """Ravens' k-d split of a box floor into cells (``PackingBoxes``; CLIPort ``packing_boxes_pairs``).

    The floor, inset by ``margin`` on every side, is cut recursively: a cell whose side along some axis exceeds
    ``2 * min_dim`` is cut across one such axis (chosen uniformly) at a uniform position leaving at least ``min_dim``
    on either side, with a gap of ``margin`` between the two halves.

    Args:
        rng: random generator.
        size: ``(x, y)`` inner box footprint, metres.
        min_dim: smallest cell side after a cut, metres.
        margin: gap between cells and inset from the walls, metres.

    Returns:
        Cells as ``(4,)`` float arrays ``(x0, y0, x1, y1)`` in the box frame (centred on the box), metres.

    Raises:
        ValueError: for a non-positive ``min_dim`` or a box smaller than twice ``margin``.
    """
    if min_dim <= 0:
        raise ValueError(f"min_dim must be > 0, got {min_dim}")
    sx, sy = float(size[0]), float(size[1])
    if min(sx, sy) <= 2 * margin:
        raise ValueError(f"a box of {sx:.3f} x {sy:.3f} m has no room inside a {margin} m margin")
    todo = [np.array([-sx / 2 + margin, -sy / 2 + margin, sx / 2 - margin, sy / 2 - margin])]
    cells = []
    while todo:
        cell = todo.pop()
        extent = cell[2:] - cell[:2]
        axes = np.flatnonzero(extent > 2 * min_dim)
        if len(axes) == 0:
            cells.append(cell)
            continue
        axis = int(rng.choice(axes))
        cut = cell[axis] + min_dim + rng.random() * (extent[axis] - 2 * min_dim)
        low, high = cell.copy(), cell.copy()
        low[2 + axis] = cut - margin / 2
        high[axis] = cut + margin / 2
        todo += [high, low]
    return cells


def shelf_layout(footprints, clearance: float) -> tuple[np.ndarray, tuple[float, float]]:
    """Slots for objects of given footprints, in rows along x, every object with ``clearance`` around it.

    Every split of the objects (in order) into 1..n rows of equal count is tried; the one with the smallest larger
    side wins (then the smallest area). Objects keep their orientation (the box frame's x along the object's x).

    Args:
        footprints: ``(n, 2)`` ``(x, y)`` object footprints, metres.
        clearance: gap between objects, and between objects and the walls, metres.

    Returns:
        ``(slots, (x, y))``: ``(n, 2)`` float slot centres in the layout frame (centred on the origin) and the inner
        footprint the layout needs, metres.

    Raises:
        ValueError: for an empty ``footprints``.
    """
    sizes = np.asarray(footprints, dtype=np.float64).reshape(-1, 2)
    n = len(sizes)
    if n == 0:
        raise ValueError("a layout needs at least one footprint")
    best = None
    for n_rows in range(1, n + 1):
        per_row = math.ceil(n / n_rows)
        rows = [list(range(i, min(i + per_row, n))) for i in range(0, n, per_row)]
        widths = [sizes[r, 0].sum() + clearance * (len(r) + 1) for r in rows]
        depths = [sizes[r, 1].max() + clearance for r in rows]
        extent = (max(widths), sum(depths) + clearance)
        key = (max(extent), extent[0] * extent[1])
        if best is None or key < best[0]:
            best = (key, rows, widths, depths, extent)
    _, rows, widths, depths, extent = best
    slots = np.zeros((n, 2))
    y = -extent[1] / 2 + clearance
    for row, width, depth in zip(rows, widths, depths, strict=True):
        x = -width / 2 + clearance
        for i in row:
            slots[i] = (x + sizes[i, 0] / 2, y + (depth - clearance) / 2)
            x += sizes[i, 0] + clearance
        y += depth
    return slots, (float(extent[0]), float(extent[1]))


__all__ = ["BOX_COLOR", "BOX_HEIGHT", "BOX_WALL", "Box", "INTO", "PACK_VERBS", "action_slot", "add_box",
           "pack_slots", "shelf_layout", "split_cells"]
