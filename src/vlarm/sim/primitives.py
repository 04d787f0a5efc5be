"""The suction pick-and-place primitive (Transporter, Zeng et al. CoRL 2020, Sec. 4; Ravens ``PickPlace``).

Approach from above, descend until contact, suction on, lift, move over the place pose, descend until the
held object touches something, release, retreat. Failures are reported, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from vlarm.sim.arm import DOWN, IKFailure
from vlarm.sim.scene import Scene
from vlarm.sim.transforms import Pose, multiply

APPROACH_HEIGHT = 0.20      # metres above the pick/place pose for the approach
LIFT_HEIGHT = 0.20          # metres above the pick point after grasping
DESCEND_DEPTH = 0.05        # how far below the target the descent may go before giving up, metres
JOINT_SPEED = 0.03          # max joint change per physics step while moving, radians
DESCEND_SPEED = 0.0015      # tip travel per physics step while descending, metres (0.36 m/s)
MOVE_TIMEOUT_STEPS = 1200


@dataclass
class PrimitiveResult:
    """Outcome of one pick-and-place.

    Attributes:
        success: the motion completed and an object was carried and released.
        failure: ``None`` or one of ``"ik_failure"``, ``"timeout"``, ``"nothing_grasped"``, ``"object_dropped"``.
        grasped_body: body id carried, or None.
        message: human-readable detail.
        sim_steps: physics steps used.
    """

    success: bool
    failure: str | None = None
    grasped_body: int | None = None
    message: str = ""
    sim_steps: int = 0


class _Abort(Exception):
    def __init__(self, failure: str, message: str):
        super().__init__(message)
        self.failure, self.message = failure, message


def _tip_orientation(pose: Pose) -> np.ndarray:
    """Tool-down orientation carrying the pose's yaw."""
    return np.asarray(p.multiplyTransforms((0, 0, 0), pose[1], (0, 0, 0), DOWN)[1])


def _move_joints(scene: Scene, target: np.ndarray, speed: float = JOINT_SPEED) -> None:
    arm = scene.arm
    for _ in range(MOVE_TIMEOUT_STEPS):
        q = arm.joint_positions()
        diff = target - q
        dist = np.linalg.norm(diff)
        if dist < 1e-2:
            return
        step = q + diff * min(1.0, speed / dist) * 1.5
        p.setJointMotorControlArray(arm.body, arm.joints, p.POSITION_CONTROL, targetPositions=list(step),
                                    positionGains=[0.5] * len(arm.joints), physicsClientId=scene.client)
        scene.step()
    raise _Abort("timeout", f"arm did not reach its joint target within {MOVE_TIMEOUT_STEPS} steps")


def _move_tip(scene: Scene, position, orientation) -> None:
    try:
        q = scene.arm.solve_ik((np.asarray(position), orientation))
    except IKFailure as err:
        raise _Abort("ik_failure", str(err)) from err
    _move_joints(scene, q)


def _descend_until_contact(scene: Scene, start, orientation, floor_z: float) -> bool:
    """Move the tip straight down from ``start`` until contact; returns whether contact happened."""
    arm = scene.arm
    z = float(start[2])
    pos = np.array(start, dtype=np.float64)
    while z > floor_z:
        z -= DESCEND_SPEED * 4
        pos[2] = z
        try:
            q = arm.solve_ik((pos, orientation))
        except IKFailure as err:
            raise _Abort("ik_failure", str(err)) from err
        for _ in range(4):
            p.setJointMotorControlArray(arm.body, arm.joints, p.POSITION_CONTROL, targetPositions=list(q),
                                        positionGains=[0.5] * len(arm.joints), physicsClientId=scene.client)
            scene.step()
            if arm.contact_body() is not None:
                return True
    return arm.contact_body() is not None


def pick_place(scene: Scene, pick_pose: Pose, place_pose: Pose) -> PrimitiveResult:
    """Run the suction pick-and-place primitive.

    Args:
        scene: a scene whose arm is at rest.
        pick_pose: where to touch the object: position (metres, z = top surface) + quaternion xyzw (yaw only).
        place_pose: where the grasp point should end up, with the yaw to apply relative to the pick yaw.

    Returns:
        A :class:`PrimitiveResult`; ``success`` is False with ``failure`` set when IK fails, the motion times
        out, nothing was grasped, or the object was dropped on the way. The arm returns home in every case.
    """
    arm = scene.arm
    start_steps = scene.sim_steps
    grasped = None
    try:
        pick_pos, place_pos = np.asarray(pick_pose[0], float), np.asarray(place_pose[0], float)
        pick_rot, place_rot = _tip_orientation(pick_pose), _tip_orientation(place_pose)
        above_pick = pick_pos + [0, 0, APPROACH_HEIGHT]
        _move_tip(scene, above_pick, pick_rot)
        _descend_until_contact(scene, above_pick, pick_rot, pick_pos[2] - DESCEND_DEPTH)
        grasped = arm.suction_on(scene.graspable())
        _move_tip(scene, pick_pos + [0, 0, LIFT_HEIGHT], pick_rot)
        if grasped is None:
            raise _Abort("nothing_grasped", f"no graspable object under the tool at {np.round(pick_pos, 3).tolist()}")
        above_place = place_pos + [0, 0, APPROACH_HEIGHT]
        _move_tip(scene, above_place, place_rot)
        tip = arm.tip_pose()[0]
        obj = scene.pose(grasped)[0]
        if arm.grasped_body is None or np.linalg.norm(tip - obj) > 0.1:
            raise _Abort("object_dropped", "the grasped object fell off the tool while moving")
        _descend_until_contact(scene, above_place, place_rot, place_pos[2] - DESCEND_DEPTH)
        arm.suction_off()
        _move_tip(scene, place_pos + [0, 0, APPROACH_HEIGHT], place_rot)
        result = PrimitiveResult(True, None, grasped, "ok")
    except _Abort as abort:
        arm.suction_off()
        result = PrimitiveResult(False, abort.failure, grasped, abort.message)
    try:
        _move_joints(scene, arm.home_joints)
    except _Abort:
        arm.set_joints(arm.home_joints)
    scene.settle()
    result.sim_steps = scene.sim_steps - start_steps
    return result


__all__ = ["PrimitiveResult", "pick_place", "multiply"]
