"""Stands built in code: the block-pyramid base, the Towers-of-Hanoi stand and its rings.

Ravens/CLIPort load these from URDF meshes (``stacking/stand.urdf``, ``hanoi/stand.urdf``, ``hanoi/disk*.obj``;
Zeng et al. CoRL 2020, Shridhar et al. CoRL 2021, Appendix A); vlarm builds them from boxes with
:func:`vlarm.sim.assets.create_compound`, keeping Ravens' dimensions:

* pyramid base: three 5 x 5 cm tiles, 5 mm thick, in a row along the base's y axis, lightest brown at -y,
  middle brown in the centre, darkest brown at +y (fixed);
* Hanoi stand: three 12 x 12 cm tiles, 1 cm thick, lighter brown at -y, middle brown, darker brown at +y, each
  with a peg in its centre, pegs 12 cm apart (fixed);
* rings (Ravens' disks): 1 cm thick hexagonal rings (six flat-topped box segments) with a hexagonal hole of
  13.5 mm inscribed radius, outer inscribed radius 3.0 / 3.5 / 4.0 cm (smallest first). The hole clears the peg
  by 7.8-9.9 mm, less than the task's 1 cm pose tolerance, so a ring that sits over a peg always counts as on it;
  the flat top gives the suction tool a surface to pick. Six segments, not more: rings of many overlapping
  segments lock together when the tool presses one a few millimetres into another as it lets go (at 2 mm
  overlap, 1 of 12 sixteen-segment stacks settled, against 24 of 24 six-segment ones).

Every body frame sits on the table (z = 0 is the bottom face), except rings, whose frame is the ring's centre.
"""

from __future__ import annotations

import math

import numpy as np

from vlarm.sim.assets import create_compound
from vlarm.sim.transforms import Pose, multiply

#: The three brown shades of both stands (Ravens ``lightbrown`` / ``brown`` / ``darkbrown``), lightest first.
BROWN_SHADES: tuple[tuple[float, float, float], ...] = (
    (0.918, 0.688, 0.559),
    (0.612, 0.459, 0.373),
    (0.306, 0.229, 0.186),
)

PYRAMID_TILE = 0.05          # edge of one pyramid base tile, metres
PYRAMID_BASE_HEIGHT = 0.005  # thickness of the pyramid base, metres

HANOI_TILE = 0.12            # edge of one Hanoi stand tile (= peg spacing), metres
HANOI_BASE_HEIGHT = 0.01     # thickness of the Hanoi stand's base, metres
PEG_WIDTH = 0.008            # side of the square peg cross-sections, metres
#: Radius of the cylinder enclosing a peg (its cross-section is three squares rotated by 30 degrees), metres.
PEG_RADIUS = PEG_WIDTH / math.sqrt(2.0)
PEG_HEIGHT = 0.045           # peg height above the stand's top surface, metres
RING_HEIGHT = 0.01           # ring thickness, metres
RING_INNER_RADIUS = 0.0135   # inscribed radius of the ring's hexagonal hole, metres
RING_OUTER_RADII: tuple[float, ...] = (0.030, 0.035, 0.040)   # inscribed outer radii, smallest first, metres
RING_SEGMENTS = 6            # hexagonal rings (see the module docstring)


def create_pyramid_base(client: int, pose: Pose) -> int:
    """Add CLIPort's fixed pyramid base: three 5 x 5 x 0.5 cm tiles, lightest brown at -y, darkest at +y.

    Args:
        client: PyBullet client id.
        pose: the base's pose on the table (position of its bottom centre in metres, quaternion xyzw).

    Returns:
        The PyBullet body id (mass 0: fixed).
    """
    parts = [((0.0, (i - 1) * PYRAMID_TILE, PYRAMID_BASE_HEIGHT / 2),
              (PYRAMID_TILE, PYRAMID_TILE, PYRAMID_BASE_HEIGHT), 0.0, BROWN_SHADES[i]) for i in range(3)]
    return create_compound(client, pose[0], pose[1], parts, mass=0.0, friction=0.8)


def create_hanoi_stand(client: int, pose: Pose) -> int:
    """Add the fixed Towers-of-Hanoi stand: three 12 x 12 x 1 cm tiles (lighter brown at -y, middle brown,
    darker brown at +y) with a :data:`PEG_HEIGHT` peg in the centre of each.

    Args:
        client: PyBullet client id.
        pose: the stand's pose on the table (position of its bottom centre in metres, quaternion xyzw).

    Returns:
        The PyBullet body id (mass 0: fixed).
    """
    parts = []
    for i in range(3):
        y = (i - 1) * HANOI_TILE
        parts.append(((0.0, y, HANOI_BASE_HEIGHT / 2), (HANOI_TILE, HANOI_TILE, HANOI_BASE_HEIGHT), 0.0,
                      BROWN_SHADES[i]))
        for yaw in (0.0, math.pi / 6, math.pi / 3):
            parts.append(((0.0, y, HANOI_BASE_HEIGHT + PEG_HEIGHT / 2), (PEG_WIDTH, PEG_WIDTH, PEG_HEIGHT), yaw,
                          BROWN_SHADES[1]))
    return create_compound(client, pose[0], pose[1], parts, mass=0.0, friction=0.5)


def peg_positions(stand_pose: Pose) -> list[np.ndarray]:
    """World xyz (metres) of the three pegs' feet on the stand's top surface, lighter brown side first."""
    return [multiply(stand_pose, ((0.0, (i - 1) * HANOI_TILE, HANOI_BASE_HEIGHT), (0, 0, 0, 1)))[0]
            for i in range(3)]


def ring_parts(outer_radius: float, color, inner_radius: float = RING_INNER_RADIUS, height: float = RING_HEIGHT,
               segments: int = RING_SEGMENTS) -> list:
    """The boxes of a flat ring centred on the origin, for :func:`create_compound`.

    Each segment spans the inscribed radii ``inner_radius``..``outer_radius`` of a regular ``segments``-gon;
    segments overlap at their inner corners so the top surface is closed. The hole is the inner ``segments``-gon
    (inscribed radius ``inner_radius``).

    Raises:
        ValueError: unless ``0 < inner_radius < outer_radius``, ``height > 0`` and ``segments >= 6``.
    """
    if not 0 < inner_radius < outer_radius or height <= 0 or segments < 6:
        raise ValueError(f"a ring needs 0 < inner radius < outer radius, height > 0 and >= 6 segments; got inner "
                         f"{inner_radius}, outer {outer_radius}, height {height}, segments {segments}")
    width = outer_radius - inner_radius
    length = 2 * outer_radius * math.tan(math.pi / segments)
    mid = (inner_radius + outer_radius) / 2
    parts = []
    for k in range(segments):
        a = 2 * math.pi * k / segments
        parts.append(((mid * math.cos(a), mid * math.sin(a), 0.0), (width, length, height), a, color))
    return parts


def create_ring(client: int, position, orientation, outer_radius: float, color, mass: float = 0.05) -> int:
    """Add a Hanoi ring (:func:`ring_parts`: :data:`RING_SEGMENTS` segments, :data:`RING_HEIGHT` thick, hole of
    inscribed radius :data:`RING_INNER_RADIUS`).

    Args:
        client: PyBullet client id.
        position: xyz of the ring's centre in metres (its bottom face is :data:`RING_HEIGHT` / 2 below).
        orientation: quaternion xyzw.
        outer_radius: inscribed outer radius in metres (:data:`RING_OUTER_RADII` holds the three Hanoi sizes).
        color: RGB in [0, 1].
        mass: kilograms.

    Returns:
        The PyBullet body id.
    """
    return create_compound(client, position, orientation, ring_parts(outer_radius, color), mass=mass, friction=0.8)


__all__ = ["BROWN_SHADES", "HANOI_BASE_HEIGHT", "HANOI_TILE", "PEG_HEIGHT", "PEG_RADIUS", "PEG_WIDTH",
           "PYRAMID_BASE_HEIGHT", "PYRAMID_TILE", "RING_HEIGHT", "RING_INNER_RADIUS", "RING_OUTER_RADII",
           "create_hanoi_stand", "create_pyramid_base", "create_ring", "peg_positions", "ring_parts"]
