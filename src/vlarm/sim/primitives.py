"""Motion primitives: suction pick-and-place and pushing (Transporter, Zeng et al. CoRL 2020, Sec. 4; Ravens
``PickPlace`` and ``push``).

Pick-and-place: approach from above, descend until contact, suction on, lift, move over the place pose, descend
until the held object touches something, release, retreat. Push: lower a flat blade ("spatula") to just above
the table and sweep it along a straight line. Failures are reported, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from vlarm.sim.arm import DOWN, FLANGE_LINK, TOOL_LENGTH, IKFailure
from vlarm.sim.scene import Scene
from vlarm.sim.transforms import Pose, multiply

APPROACH_HEIGHT = 0.20      # metres above the pick/place pose for the approach
LIFT_HEIGHT = 0.20          # metres above the pick point after grasping
DESCEND_DEPTH = 0.05        # how far below the target the descent may go before giving up, metres
JOINT_SPEED = 0.03          # max joint change per physics step while moving, radians
DESCEND_SPEED = 0.0015      # tip travel per physics step while descending, metres (0.36 m/s)
MOVE_TIMEOUT_STEPS = 1200
CARRY_SPEED = 0.001         # tool travel per physics step for a low straight carry (pick_place carry_height), metres


@dataclass
class PrimitiveResult:
    """Outcome of one primitive (a pick-and-place or a push).

    Attributes:
        success: the motion completed and an object was carried and released.
        failure: ``None`` or one of ``"ik_failure"``, ``"timeout"``, ``"nothing_grasped"``, ``"object_dropped"``
            (pick-and-place), ``"push_too_short"``, ``"nothing_pushed"`` (push).
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


def _move_line(scene: Scene, start, end, orientation, speed: float, end_orientation=None) -> None:
    """Move the tip along the straight segment ``start`` -> ``end`` (IK targets, metres) at ``speed`` metres per
    physics step, turning from ``orientation`` to ``end_orientation`` (default: no turn) on the way.

    An IK solution is sent every 4 physics steps (waypoints ``4 * speed`` apart); the last waypoint is held until
    the joints arrive.
    """
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    n = max(1, int(np.ceil(np.linalg.norm(end - start) / (4 * speed))))
    arm = scene.arm
    q = arm.joint_positions()
    for k in range(1, n + 1):
        turn = orientation if end_orientation is None else p.getQuaternionSlerp(orientation, end_orientation, k / n)
        try:
            q = arm.solve_ik((start + (end - start) * k / n, np.asarray(turn)))
        except IKFailure as err:
            raise _Abort("ik_failure", str(err)) from err
        p.setJointMotorControlArray(arm.body, arm.joints, p.POSITION_CONTROL, targetPositions=list(q),
                                    positionGains=[0.5] * len(arm.joints), physicsClientId=scene.client)
        scene.step(4)
    _move_joints(scene, q)


def _slide(scene: Scene, target, orientation, speed: float, start_orientation=None, start=None) -> np.ndarray:
    """Move the real tip in a straight line to ``target`` (metres) at ``speed`` metres per physics step, correcting
    for :func:`_tip_bias`; the line starts at ``start`` (default: where the tip is). Returns the bias (metres)."""
    bias = _tip_bias(scene)
    modelled = (np.asarray(scene.arm.tip_pose()[0]) if start is None else np.asarray(start, dtype=np.float64)) - bias
    first = orientation if start_orientation is None else start_orientation
    _move_line(scene, modelled, np.asarray(target, dtype=np.float64) - bias, first, speed,
               end_orientation=None if start_orientation is None else orientation)
    return bias


def _tip_bias(scene: Scene) -> np.ndarray:
    """World offset (metres) of the simulated tip from where the arm's IK model puts it (flange + tool length).

    The tool is welded to the flange's centre-of-mass frame, which PyBullet's constraints use and the IK model
    does not, so the real tip hangs a little below the IK target (2.4 cm on the scaled iiwa). Descents until
    contact never notice; motions at a fixed height (a push, a low carry) correct for it.
    """
    arm = scene.arm
    flange = p.getLinkState(arm.body, FLANGE_LINK, computeForwardKinematics=True, physicsClientId=scene.client)
    modelled = multiply((flange[4], flange[5]), ((0, 0, TOOL_LENGTH), (0, 0, 0, 1)))[0]
    return np.asarray(arm.tip_pose()[0]) - modelled


def _nearest_touching(scene: Scene) -> set[int]:
    """The graspable body whose contact with the tool lies nearest the tool's axis (empty set: none touches)."""
    arm = scene.arm
    axis = np.asarray(arm.tip_pose()[0][:2])
    graspable = scene.graspable()
    best, best_dist = None, np.inf
    for c in p.getContactPoints(bodyA=arm.tool, physicsClientId=scene.client):
        dist = float(np.linalg.norm(np.asarray(c[5][:2]) - axis))
        if c[2] in graspable and dist < best_dist:
            best, best_dist = c[2], dist
    return set() if best is None else {best}


def pick_place(scene: Scene, pick_pose: Pose, place_pose: Pose, carry_height: float | None = None,
               carry_speed: float = CARRY_SPEED, grasp_nearest: bool = False) -> PrimitiveResult:
    """Run the suction pick-and-place primitive.

    Args:
        scene: a scene whose arm is at rest.
        pick_pose: where to touch the object: position (metres, z = top surface) + quaternion xyzw (yaw only).
        place_pose: where the grasp point should end up, with the yaw to apply relative to the pick yaw.
        carry_height: None (the default): lift the object :data:`LIFT_HEIGHT` and carry it through the air
            (Transporter's primitive). A height in metres: lift it only this far above the pick pose and slide it
            in a straight line, at ``carry_speed`` metres per physics step, to this height above the place pose,
            so that what hangs from it (the rest of a rope) is dragged along the table (Ravens' align-rope uses
            ``PickPlace(height=0.02, speed=0.001)``).
        carry_speed: tool travel per physics step while lifting and sliding with ``carry_height``, metres.
        grasp_nearest: when the tool touches several objects, grasp the one touched nearest the tool's axis
            (small neighbouring objects such as rope beads); False (the default) grasps any touched object
            (:meth:`vlarm.sim.arm.SuctionArm.suction_on`, the lowest body id).

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
        grasped = arm.suction_on(_nearest_touching(scene) if grasp_nearest else scene.graspable())
        if carry_height is None:
            _move_tip(scene, pick_pos + [0, 0, LIFT_HEIGHT], pick_rot)
        else:
            _slide(scene, pick_pos + [0, 0, carry_height], pick_rot, carry_speed)
        if grasped is None:
            raise _Abort("nothing_grasped", f"no graspable object under the tool at {np.round(pick_pos, 3).tolist()}")
        if carry_height is None:
            above_place = place_pos + [0, 0, APPROACH_HEIGHT]
            _move_tip(scene, above_place, place_rot)
        else:
            bias = _slide(scene, place_pos + [0, 0, carry_height], place_rot, carry_speed, start_orientation=pick_rot)
            above_place, place_pos = place_pos + [0, 0, carry_height] - bias, place_pos - bias
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
    return _finish(scene, result, start_steps)


def _finish(scene: Scene, result: PrimitiveResult, start_steps: int) -> PrimitiveResult:
    """Send the arm home (teleport if the move fails), let the scene settle and count the primitive's physics steps."""
    arm = scene.arm
    try:
        _move_joints(scene, arm.home_joints)
    except _Abort:
        arm.set_joints(arm.home_joints)
    scene.settle()
    result.sim_steps = scene.sim_steps - start_steps
    return result


# ---------------------------------------------------------------------------------------------------- pushing
#: Blade ("spatula") swept by :func:`push`: thickness along the push, width across it, height; metres.
BLADE_SIZE = (0.01, 0.08, 0.03)
BLADE_CLEARANCE = 0.003     # gap between the blade's bottom edge and the table while pushing, metres
PUSH_SPEED = 0.001          # blade travel per physics step while pushing, metres (0.24 m/s)
MIN_PUSH_LENGTH = 0.01      # shorter pushes are refused, metres
MOVED_EPS = 0.005           # an object displaced further than this (metres) counts as pushed


def _attach_blade(scene: Scene, yaw: float, size) -> tuple[int, int]:
    """Weld a flat blade below the tip, its width across the push direction ``yaw``; returns (body, constraint)."""
    arm = scene.arm
    tip_pos = arm.tip_pose()[0]
    blade_quat = np.asarray(p.getQuaternionFromEuler((0.0, 0.0, yaw)))
    blade_pos = np.asarray(tip_pos) - [0.0, 0.0, size[2] / 2]
    half = [float(v) / 2 for v in size]
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=scene.client)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=[0.6, 0.6, 0.6, 1], physicsClientId=scene.client)
    blade = p.createMultiBody(0.05, col, vis, blade_pos, blade_quat, physicsClientId=scene.client)
    p.changeDynamics(blade, -1, lateralFriction=0.5, physicsClientId=scene.client)
    p.setCollisionFilterPair(blade, arm.tool, -1, -1, 0, physicsClientId=scene.client)
    tool_pos, tool_quat = p.getBasePositionAndOrientation(arm.tool, physicsClientId=scene.client)
    inv_pos, inv_quat = p.invertTransform(tool_pos, tool_quat)
    rel_pos, rel_quat = p.multiplyTransforms(inv_pos, inv_quat, blade_pos, blade_quat)
    weld = p.createConstraint(arm.tool, -1, blade, -1, p.JOINT_FIXED, (0, 0, 0), rel_pos, (0, 0, 0),
                              parentFrameOrientation=rel_quat, physicsClientId=scene.client)
    p.changeConstraint(weld, maxForce=1000, physicsClientId=scene.client)
    return blade, weld


def push(scene: Scene, start_pose: Pose, end_pose: Pose, blade_size=BLADE_SIZE) -> PrimitiveResult:
    """Run the pushing primitive: sweep a flat blade along the table from ``start_pose`` to ``end_pose``.

    Ravens sweeps piles with a spatula end effector (Zeng et al. CoRL 2020, Sec. 4, ``primitives.push``); vlarm's
    arm carries only the suction tool, so for the length of the push a flat blade (:data:`BLADE_SIZE`: 1 cm thick
    along the push, 8 cm wide across it, 3 cm tall) is welded under the tool tip and removed afterwards: the
    scene holds the same bodies before and after. The blade's centre travels in a straight line from the start
    to the end position at :data:`BLADE_CLEARANCE` above the table, its width kept perpendicular to the push
    direction, at :data:`PUSH_SPEED`; then the tool lifts and the arm goes home. Unlike Ravens' primitive the
    poses are taken literally (Ravens moved the start back 2 cm and the end back 5 cm): where to start behind
    an object is the caller's choice.

    Args:
        scene: a scene whose arm is at rest.
        start_pose: where the blade's centre comes down: position (metres; z ignored) + quaternion (ignored).
        end_pose: where the blade's centre stops (z and quaternion ignored).
        blade_size: ``(thickness, width, height)`` of the blade in metres.

    Returns:
        A :class:`PrimitiveResult` (``grasped_body`` None). ``success`` is False with ``failure`` set to
        ``"push_too_short"`` (start and end closer than :data:`MIN_PUSH_LENGTH` in xy; nothing moves),
        ``"ik_failure"``, ``"timeout"`` or ``"nothing_pushed"`` (no movable object was displaced by more than
        :data:`MOVED_EPS`). The arm returns home in every case.
    """
    start_steps = scene.sim_steps
    start = np.array([float(start_pose[0][0]), float(start_pose[0][1]), 0.0])
    end = np.array([float(end_pose[0][0]), float(end_pose[0][1]), 0.0])
    length = float(np.linalg.norm(end - start))
    if length < MIN_PUSH_LENGTH:
        return PrimitiveResult(False, "push_too_short", None, f"push of {length * 1000:.1f} mm is shorter than "
                               f"{MIN_PUSH_LENGTH * 1000:.0f} mm; nothing was moved", 0)
    yaw = float(np.arctan2(end[1] - start[1], end[0] - start[0]))
    orientation = _tip_orientation((start, p.getQuaternionFromEuler((0.0, 0.0, yaw))))
    tip_z = BLADE_CLEARANCE + float(blade_size[2])
    movable = sorted(scene.graspable())
    before = {b: scene.pose(b)[0] for b in movable}
    blade = weld = None
    try:
        _move_tip(scene, start + [0, 0, APPROACH_HEIGHT], orientation)
        blade, weld = _attach_blade(scene, yaw, blade_size)
        _slide(scene, start + [0, 0, tip_z], orientation, DESCEND_SPEED * 4)
        _slide(scene, end + [0, 0, tip_z], orientation, PUSH_SPEED, start=start + [0, 0, tip_z])
        _slide(scene, end + [0, 0, APPROACH_HEIGHT], orientation, DESCEND_SPEED * 4)
        moved = [b for b in movable if np.linalg.norm(scene.pose(b)[0][:2] - before[b][:2]) > MOVED_EPS]
        if moved:
            result = PrimitiveResult(True, None, None, f"pushed {len(moved)} object(s)")
        else:
            result = PrimitiveResult(False, "nothing_pushed", None, "no object moved along the push "
                                     f"{np.round(start[:2], 3).tolist()} -> {np.round(end[:2], 3).tolist()}")
    except _Abort as abort:
        result = PrimitiveResult(False, abort.failure, None, abort.message)
    if weld is not None:
        p.removeConstraint(weld, physicsClientId=scene.client)
    if blade is not None:
        p.removeBody(blade, physicsClientId=scene.client)
    return _finish(scene, result, start_steps)


__all__ = ["PrimitiveResult", "pick_place", "push", "multiply"]
