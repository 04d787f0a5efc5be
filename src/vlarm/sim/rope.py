"""A rope built in code: a chain of small beads joined by point-to-point constraints (Ravens' cable).

Ravens (Zeng et al. CoRL 2020, ``align_rope`` / ``manipulating_rope``) models a rope as ``n`` small cubes, each
joined to the previous one by a ball joint (``JOINT_POINT2POINT``) one link length above it, drawn as spheres;
the chain is created as a vertical column and dropped, so it lands as a random tangle. This module builds the
same chain; the task decides where it goes and what counts as aligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pybullet as p

BEAD_HALF = 0.005            # half edge of a bead's collision cube, metres (Ravens: radius 0.005)
BEAD_MASS = 0.1              # kilograms per bead (Ravens)
JOINT_MAX_FORCE = 100.0      # newtons a joint may use to hold two beads together (Ravens)


@dataclass
class Rope:
    """A rope in a PyBullet client.

    Attributes:
        beads: body ids from one end to the other.
        joints: constraint ids; ``joints[i]`` joins ``beads[i]`` to ``beads[i + 1]``.
        spacing: distance between neighbouring bead centres when the rope is straight, metres.
    """

    beads: list[int] = field(default_factory=list)
    joints: list[int] = field(default_factory=list)
    spacing: float = 0.0

    def positions(self, client: int) -> np.ndarray:
        """Bead centres, ``(n, 3)`` float64 metres, in rope order."""
        return np.array([p.getBasePositionAndOrientation(b, physicsClientId=client)[0] for b in self.beads])

    def length(self) -> float:
        """Centre-to-centre length of the straight rope, metres: ``(n - 1) * spacing``."""
        return max(len(self.beads) - 1, 0) * self.spacing


def create_rope(client: int, base_position, n_beads: int, spacing: float, end_color, middle_color,
                bead_half: float = BEAD_HALF, mass: float = BEAD_MASS, max_force: float = JOINT_MAX_FORCE) -> Rope:
    """Add a rope as a vertical column of beads above ``base_position`` (it falls into a tangle when simulated).

    Args:
        client: PyBullet client id.
        base_position: xyz in metres; bead ``i`` starts at ``base_position + (0, 0, (i + 1) * spacing)``.
        n_beads: number of beads (>= 2).
        spacing: centre-to-centre distance of neighbouring beads (the joint length), metres; more than
            ``2 * bead_half`` so that neighbours do not overlap.
        end_color: RGB in [0, 1] of the two end beads (Ravens draws the ends apart from the rest).
        middle_color: RGB in [0, 1] of every other bead.
        bead_half: half edge of a bead's collision cube, metres; a bead is drawn as a sphere of radius
            ``1.5 * bead_half`` (Ravens).
        mass: kilograms per bead.
        max_force: the most force (newtons) a joint uses to keep its two beads together.

    Returns:
        The :class:`Rope`.

    Raises:
        ValueError: for fewer than 2 beads or a spacing that makes neighbours overlap.
    """
    if n_beads < 2:
        raise ValueError(f"a rope needs at least 2 beads, got {n_beads}")
    if spacing <= 2 * bead_half:
        raise ValueError(f"bead spacing {spacing} m must exceed the bead size {2 * bead_half} m")
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[bead_half] * 3, physicsClientId=client)
    visuals = {}
    for name, rgb in (("end", end_color), ("middle", middle_color)):
        visuals[name] = p.createVisualShape(p.GEOM_SPHERE, radius=bead_half * 1.5,
                                            rgbaColor=[float(c) for c in rgb] + [1.0], physicsClientId=client)
    rope = Rope(spacing=float(spacing))
    position = np.asarray(base_position, dtype=np.float64).copy()
    for i in range(n_beads):
        position[2] += spacing
        visual = visuals["end" if i in (0, n_beads - 1) else "middle"]
        bead = p.createMultiBody(mass, col, visual, basePosition=position.tolist(), physicsClientId=client)
        if rope.beads:
            joint = p.createConstraint(rope.beads[-1], -1, bead, -1, p.JOINT_POINT2POINT, (0, 0, 0),
                                       (0, 0, spacing), (0, 0, 0), physicsClientId=client)
            p.changeConstraint(joint, maxForce=max_force, physicsClientId=client)
            rope.joints.append(joint)
        rope.beads.append(bead)
    return rope


__all__ = ["BEAD_HALF", "BEAD_MASS", "JOINT_MAX_FORCE", "Rope", "create_rope"]
