"""End-effector delta servoing: the closed-loop control mode used by RT-1 (Brohan et al., RSS 2023, Sec. 3 and
Appendix B: actions are end-effector deltas sent at a fixed rate; here the tool stays pointing down, so the
rotation is a yaw only).

One control step lasts :data:`PHYSICS_STEPS_PER_CONTROL` physics steps (1/240 s each), i.e. the control rate is
:data:`CONTROL_HZ` = 10 Hz. A command moves the suction tip's *commanded* pose by a translation (metres) and a
yaw (radians), clipped to :data:`MAX_TRANSLATION` / :data:`MAX_YAW` per step and to the workspace, and turns
suction on or off. The motion is guarded: a downward move stops where the tool (or the object it holds) first
touches something, as the pick-and-place primitive's descent does (:mod:`vlarm.sim.primitives`).

:class:`PickPlaceWaypoints` is the scripted expert of this mode: the pick-and-place primitive's waypoints
(above the pick, down to contact, suction on, lift, above the place, down to contact, release, retreat) followed
with bounded deltas, from the real tip position at every step (closed-loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from vlarm.sim.arm import DOWN, IKFailure
from vlarm.sim.heightmap import WORKSPACE_BOUNDS
from vlarm.sim.scene import Scene
from vlarm.sim.transforms import Pose, quat_to_yaw

CONTROL_HZ = 10
PHYSICS_HZ = 240
PHYSICS_STEPS_PER_CONTROL = PHYSICS_HZ // CONTROL_HZ
#: Largest translation per control step along each axis, metres (0.3 m/s at 10 Hz).
MAX_TRANSLATION = 0.03
#: Largest yaw change per control step, radians.
MAX_YAW = np.pi / 8
#: Lowest and highest commanded tip height, metres (the tool may press slightly into the table: guarded).
Z_LIMITS = (-0.01, 0.45)
#: Margin around the workspace in x/y that the commanded tip may reach, metres.
XY_MARGIN = 0.05
_GAIN = 0.5


@dataclass
class ServoResult:
    """What one control step did.

    Attributes:
        contact: the tool (or the object it holds) touches something after the step.
        grasped_body: body id held by suction after the step, or None.
        ik_failure: the commanded pose was out of reach; the arm held its previous target.
    """

    contact: bool
    grasped_body: int | None
    ik_failure: bool = False


def tool_quaternion(yaw: float) -> np.ndarray:
    """Tool-down orientation with ``yaw`` radians about +z (quaternion xyzw), as the primitives use."""
    q_yaw = p.getQuaternionFromEuler((0.0, 0.0, float(yaw)))
    return np.asarray(p.multiplyTransforms((0, 0, 0), q_yaw, (0, 0, 0), DOWN)[1])


def wrap_angle(angle: float) -> float:
    """``angle`` (radians) wrapped into [-pi, pi)."""
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class TipServo:
    """Moves the suction tip of ``scene.arm`` by bounded deltas (one call = one control step).

    The servo keeps the commanded tip pose (position in metres of the arm's IK model, yaw in radians); a delta
    moves that command, so small rounding in the physics never accumulates into drift. Call :meth:`reset` after
    every scene reset (the arm is rebuilt at home).
    """

    def __init__(self, scene: Scene):
        self.scene = scene
        self.target = np.zeros(3)
        self.yaw = 0.0

    def reset(self) -> None:
        """Take the arm's current (home) tip pose as the command."""
        self.target = np.asarray(self.scene.arm.tip_pose()[0], dtype=np.float64) - self.tip_bias()
        self.yaw = 0.0

    def tip_bias(self) -> np.ndarray:
        """World offset (metres) of the real tip from the IK model's tip (see ``primitives._tip_bias``)."""
        from vlarm.sim.primitives import _tip_bias

        return _tip_bias(self.scene)

    def step(self, translation, yaw: float, suction: bool) -> ServoResult:
        """Run one control step.

        Args:
            translation: ``(3,)`` tip translation in metres (world frame), clipped to +-:data:`MAX_TRANSLATION`.
            yaw: change of the tool yaw in radians, clipped to +-:data:`MAX_YAW`.
            suction: True turns suction on (an object touching the tip is grasped, now or as soon as the move
                makes contact), False releases whatever is held.

        Returns:
            A :class:`ServoResult`.

        Raises:
            ValueError: ``translation`` is not 3 finite numbers or ``yaw`` is not finite.
        """
        delta = np.asarray(translation, dtype=np.float64).reshape(-1)
        if delta.shape != (3,) or not np.all(np.isfinite(delta)) or not np.isfinite(yaw):
            raise ValueError(f"a servo command is a finite (3,) translation in metres and a finite yaw in radians, "
                             f"got {np.asarray(translation).tolist()} and {yaw}")
        arm, scene = self.scene.arm, self.scene
        delta = np.clip(delta, -MAX_TRANSLATION, MAX_TRANSLATION)
        if not suction:
            arm.suction_off()
        elif arm.grasped_body is None:
            arm.suction_on(scene.graspable())
        b = WORKSPACE_BOUNDS
        low = np.array([b[0, 0] - XY_MARGIN, b[1, 0] - XY_MARGIN, Z_LIMITS[0]])
        high = np.array([b[0, 1] + XY_MARGIN, b[1, 1] + XY_MARGIN, Z_LIMITS[1]])
        target = np.clip(self.target + delta, low, high)
        new_yaw = wrap_angle(self.yaw + float(np.clip(yaw, -MAX_YAW, MAX_YAW)))
        ik_failure = False
        try:
            q = arm.solve_ik((target, tool_quaternion(new_yaw)))
            self.target, self.yaw = target, new_yaw
        except IKFailure:
            ik_failure = True
            q = arm.solve_ik((self.target, tool_quaternion(self.yaw)), tolerance=np.inf)
        descending = delta[2] < 0
        for _ in range(PHYSICS_STEPS_PER_CONTROL):
            p.setJointMotorControlArray(arm.body, arm.joints, p.POSITION_CONTROL, targetPositions=list(q),
                                        positionGains=[_GAIN] * len(arm.joints), physicsClientId=scene.client)
            scene.step()
            if descending and arm.contact_body() is not None:
                # Guarded move: stop where contact happened and make that the command.
                q = arm.joint_positions()
                self.target = np.asarray(arm.tip_pose()[0]) - self.tip_bias()
                descending = False
        if suction and arm.grasped_body is None:
            arm.suction_on(scene.graspable())
        return ServoResult(arm.contact_body() is not None, arm.grasped_body, ik_failure)


class PickPlaceWaypoints:
    """The pick-and-place primitive's waypoints as a closed-loop delta controller (the ``ee_delta`` expert).

    Phases: move above the pick point (:data:`APPROACH` metres up), descend until contact, turn suction on, lift,
    move (turning to the place yaw) above the place point, descend until the held object touches something,
    release, retreat up; then :attr:`finished` is True. Each :meth:`command` is computed from the real tip
    position, so the controller corrects whatever the physics did with the previous one.

    Args:
        pick_pose: where to touch the object, position metres + quaternion xyzw (yaw only), as the task oracle
            returns it.
        place_pose: where the grasp point goes, with the tool yaw to place at.
    """

    APPROACH = 0.20
    TOLERANCE = 0.004
    YAW_TOLERANCE = 0.02
    #: Phases whose commands are computed from the real tip position towards a fixed goal, so that a perturbed
    #: step is corrected by the next command (the descents go straight down until contact and correct nothing).
    CORRECTING_PHASES = ("approach_pick", "lift", "approach_place", "retreat")

    def __init__(self, pick_pose: Pose, place_pose: Pose):
        self.pick = np.asarray(pick_pose[0], dtype=np.float64)
        self.place = np.asarray(place_pose[0], dtype=np.float64)
        self.pick_yaw = quat_to_yaw(pick_pose[1])
        self.place_yaw = quat_to_yaw(place_pose[1])
        self.phase = "approach_pick"
        self.finished = False
        self.failed = False

    def command(self, tip: np.ndarray, tool_yaw: float, contact: bool, grasped: bool) -> tuple[np.ndarray, float,
                                                                                                 bool]:
        """The next control step: ``(translation (3,) metres, yaw radians, suction on)``.

        Args:
            tip: real tip position, metres.
            tool_yaw: commanded tool yaw, radians.
            contact: the tool (or held object) touches something.
            grasped: suction holds an object.
        """
        up = np.array([0.0, 0.0, self.APPROACH])
        if self.phase == "approach_pick":
            move, turn = self._toward(tip, self.pick + up, tool_yaw, self.pick_yaw)
            if move is None:
                self.phase = "descend_pick"
            else:
                return move, turn, False
        if self.phase == "descend_pick":
            if not contact and tip[2] > self.pick[2] - 0.05:
                return np.array([0.0, 0.0, -MAX_TRANSLATION]), 0.0, False
            self.phase = "grasp"
            return np.zeros(3), 0.0, True
        if self.phase == "grasp":
            if not grasped:
                self.failed = self.finished = True
                return np.zeros(3), 0.0, False
            self.phase = "lift"
        if self.phase == "lift":
            move, turn = self._toward(tip, np.array([tip[0], tip[1], self.pick[2] + self.APPROACH]), tool_yaw,
                                      tool_yaw)
            if move is None:
                self.phase = "approach_place"
            else:
                return move, turn, True
        if self.phase == "approach_place":
            move, turn = self._toward(tip, self.place + up, tool_yaw, self.place_yaw)
            if move is None:
                self.phase = "descend_place"
            else:
                return move, turn, True
        if self.phase == "descend_place":
            if not contact and tip[2] > self.place[2] - 0.05:
                return np.array([0.0, 0.0, -MAX_TRANSLATION]), 0.0, True
            self.phase = "release"
            return np.zeros(3), 0.0, False
        if self.phase == "release":
            move, turn = self._toward(tip, np.array([tip[0], tip[1], self.place[2] + self.APPROACH / 2]), tool_yaw,
                                      tool_yaw)
            if move is not None:
                self.phase = "retreat"
                return move, turn, False
            self.finished = True
            return np.zeros(3), 0.0, False
        if self.phase == "retreat":
            move, turn = self._toward(tip, np.array([tip[0], tip[1], self.place[2] + self.APPROACH / 2]), tool_yaw,
                                      tool_yaw)
            if move is None:
                self.finished = True
                return np.zeros(3), 0.0, False
            return move, turn, False
        raise RuntimeError(f"unknown phase {self.phase!r}")

    @property
    def correcting(self) -> bool:
        """Whether the command just returned belongs to a :data:`CORRECTING_PHASES` phase (not yet finished)."""
        return not self.finished and self.phase in self.CORRECTING_PHASES

    def _toward(self, tip, goal, yaw, goal_yaw) -> tuple[np.ndarray | None, float]:
        """A bounded step from ``tip`` towards ``goal`` (and yaw towards ``goal_yaw``); None when both arrived."""
        diff = np.asarray(goal) - np.asarray(tip)
        turn = wrap_angle(goal_yaw - yaw)
        if np.all(np.abs(diff) < self.TOLERANCE) and abs(turn) < self.YAW_TOLERANCE:
            return None, 0.0
        scale = max(1.0, float(np.max(np.abs(diff))) / MAX_TRANSLATION, abs(turn) / MAX_YAW)
        return diff / scale, turn / scale
