"""A KUKA iiwa arm from pybullet_data with a suction tool built in code.

Ravens/CLIPort use a UR5 with a suction cup; pybullet_data has no UR5, so the iiwa is loaded at 1.2x scale
(its reach then covers the CLIPort workspace, x in [0.25, 0.75], y in [-0.5, 0.5]) and a cylindrical suction
tool is fixed to its flange. Grasping follows Ravens' ``Suction``: when the tool tip touches an object and
suction is turned on, a fixed constraint joins the object to the tip.
"""

from __future__ import annotations

import numpy as np
import pybullet as p
import pybullet_data

from vlarm.sim.transforms import Pose, multiply

ARM_URDF = "kuka_iiwa/model.urdf"
ARM_SCALE = 1.2
FLANGE_LINK = 6
TOOL_LENGTH = 0.10     # flange to suction tip, metres
TOOL_RADIUS = 0.012
#: Tip orientation "pointing down" with zero yaw.
DOWN = np.asarray(p.getQuaternionFromEuler((np.pi, 0.0, 0.0)))
HOME_TIP_POSITION = (0.45, 0.0, 0.45)


class IKFailure(RuntimeError):
    """No joint configuration reaches the requested tool pose within tolerance."""


class SuctionArm:
    """Arm + suction tool living in a PyBullet client.

    Args:
        client: PyBullet client id of the scene.
        ik_client: a separate PyBullet client holding a kinematic copy of the arm, used to iterate IK without
            disturbing the simulated arm.
        base_position: xyz of the arm base in metres.
    """

    def __init__(self, client: int, ik_client: int, base_position=(0.0, 0.0, 0.0)):
        self.client = client
        self.ik_client = ik_client
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        self.body = p.loadURDF(ARM_URDF, base_position, useFixedBase=True, globalScaling=ARM_SCALE,
                               physicsClientId=client)
        self.joints = [j for j in range(p.getNumJoints(self.body, physicsClientId=client))
                       if p.getJointInfo(self.body, j, physicsClientId=client)[2] == p.JOINT_REVOLUTE]
        info = [p.getJointInfo(self.body, j, physicsClientId=client) for j in self.joints]
        self.lower = np.array([i[8] for i in info])
        self.upper = np.array([i[9] for i in info])
        # Only the tool touches the world: arm links do not collide (cheaper physics, no self-contacts).
        for link in range(-1, p.getNumJoints(self.body, physicsClientId=client)):
            p.setCollisionFilterGroupMask(self.body, link, 0, 0, physicsClientId=client)
        # Widen the joint limits (see ``_ik_from``): the arm is a carrier for the suction tool, as Ravens' UR5.
        for j in self.joints:
            p.changeDynamics(self.body, j, jointLowerLimit=-2 * np.pi, jointUpperLimit=2 * np.pi,
                             physicsClientId=client)
        # Tool: a cylinder hanging below the flange, welded with a stiff fixed constraint.
        col = p.createCollisionShape(p.GEOM_CYLINDER, radius=TOOL_RADIUS, height=TOOL_LENGTH, physicsClientId=client)
        vis = p.createVisualShape(p.GEOM_CYLINDER, radius=TOOL_RADIUS, length=TOOL_LENGTH,
                                  rgbaColor=[0.6, 0.6, 0.6, 1], physicsClientId=client)
        flange = p.getLinkState(self.body, FLANGE_LINK, computeForwardKinematics=True, physicsClientId=client)
        tool_pose = multiply((flange[4], flange[5]), ((0, 0, TOOL_LENGTH / 2), (0, 0, 0, 1)))
        self.tool = p.createMultiBody(0.05, col, vis, tool_pose[0], tool_pose[1], physicsClientId=client)
        c = p.createConstraint(self.body, FLANGE_LINK, self.tool, -1, p.JOINT_FIXED, (0, 0, 0),
                               (0, 0, TOOL_LENGTH / 2), (0, 0, 0), physicsClientId=client)
        p.changeConstraint(c, maxForce=1000, physicsClientId=client)
        self.grasp_constraint: int | None = None
        self.grasped_body: int | None = None
        # Kinematic copy for IK.
        p.resetSimulation(physicsClientId=ik_client)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=ik_client)
        self.ik_body = p.loadURDF(ARM_URDF, base_position, useFixedBase=True, globalScaling=ARM_SCALE,
                                  physicsClientId=ik_client)
        self.home_joints = self.solve_ik((np.asarray(HOME_TIP_POSITION), DOWN), seed=np.zeros(len(self.joints)))
        self.set_joints(self.home_joints)

    # ----------------------------------------------------------------- kinematics
    def joint_positions(self) -> np.ndarray:
        """Current joint angles, radians, ``(7,)`` float64."""
        return np.array([s[0] for s in p.getJointStates(self.body, self.joints, physicsClientId=self.client)])

    def set_joints(self, q: np.ndarray) -> None:
        """Teleport the arm (and the tool and any grasped object) to joint angles ``q`` (radians)."""
        for j, v in zip(self.joints, q, strict=True):
            p.resetJointState(self.body, j, float(v), physicsClientId=self.client)
        flange = p.getLinkState(self.body, FLANGE_LINK, computeForwardKinematics=True, physicsClientId=self.client)
        tool_pose = multiply((flange[4], flange[5]), ((0, 0, TOOL_LENGTH / 2), (0, 0, 0, 1)))
        p.resetBasePositionAndOrientation(self.tool, tool_pose[0], tool_pose[1], physicsClientId=self.client)
        p.setJointMotorControlArray(self.body, self.joints, p.POSITION_CONTROL, targetPositions=list(q),
                                    physicsClientId=self.client)

    def tip_pose(self) -> Pose:
        """Pose of the suction tip (bottom centre of the tool), position metres + quaternion xyzw."""
        pos, quat = p.getBasePositionAndOrientation(self.tool, physicsClientId=self.client)
        return multiply((pos, quat), ((0, 0, TOOL_LENGTH / 2), (0, 0, 0, 1)))

    def solve_ik(self, tip_pose: Pose, seed: np.ndarray | None = None, tolerance: float = 2e-3) -> np.ndarray:
        """Joint angles that put the suction tip at ``tip_pose``.

        Args:
            tip_pose: target tip position (metres) and orientation (quaternion xyzw; use ``DOWN`` composed with
                a yaw to point the tool at the table).
            seed: initial joint angles (default: the arm's current ones).
            tolerance: maximum position error in metres.

        Returns:
            ``(7,)`` joint angles in radians (URDF joint limits are not enforced, see ``_ik_from``).

        Raises:
            IKFailure: if the position error stays above ``tolerance``.
        """
        flange_target = multiply(tip_pose, ((0, 0, -TOOL_LENGTH), (0, 0, 0, 1)))
        first = self.joint_positions() if seed is None else np.asarray(seed, dtype=np.float64)
        # IK from one seed can stall in a local minimum near the base; retry from the home pose and zeros.
        seeds = [first] + [q for q in (getattr(self, "home_joints", None), np.zeros(len(self.joints)))
                           if q is not None]
        best_q, best_err = first, np.inf
        for start in seeds:
            q, err = self._ik_from(flange_target, start)
            if err < best_err:
                best_q, best_err = q, err
            if err < tolerance / 4:
                break
        if best_err > tolerance:
            raise IKFailure(f"IK error {best_err * 1000:.1f} mm for tip position {np.round(tip_pose[0], 3).tolist()}")
        return best_q

    def _ik_from(self, flange_target: Pose, q: np.ndarray) -> tuple[np.ndarray, float]:
        c, b = self.ik_client, self.ik_body
        err = np.inf
        for _ in range(4):
            for j, v in zip(self.joints, q, strict=True):
                p.resetJointState(b, j, float(v), physicsClientId=c)
            # Joint limits are left out on purpose: PyBullet's null-space IK stalls near the base with them,
            # and its position motors do not enforce limits (Ravens' UR5 IK likewise uses +-17 rad wrists).
            q = np.array(p.calculateInverseKinematics(
                b, FLANGE_LINK, flange_target[0], flange_target[1], maxNumIterations=100,
                residualThreshold=1e-5, physicsClientId=c))[: len(self.joints)]
            for j, v in zip(self.joints, q, strict=True):
                p.resetJointState(b, j, float(v), physicsClientId=c)
            reached = p.getLinkState(b, FLANGE_LINK, computeForwardKinematics=True, physicsClientId=c)[4]
            err = float(np.linalg.norm(np.asarray(reached) - flange_target[0]))
            if err < 5e-4:
                break
        return q, err

    # ----------------------------------------------------------------- suction
    def contact_body(self) -> int | None:
        """Body touching the tip (or touching the grasped object), else None."""
        if self.grasped_body is not None:
            for c in p.getContactPoints(bodyA=self.grasped_body, physicsClientId=self.client):
                if c[2] not in (self.tool, self.body):
                    return c[2]
            return None
        for c in p.getContactPoints(bodyA=self.tool, physicsClientId=self.client):
            if c[2] != self.body:
                return c[2]
        return None

    def suction_on(self, graspable: set[int]) -> int | None:
        """Turn suction on: weld the touched object to the tip if it is in ``graspable``.

        Returns:
            The grasped body id, or None if nothing graspable touches the tip.
        """
        if self.grasped_body is not None:
            return self.grasped_body
        touching = {c[2] for c in p.getContactPoints(bodyA=self.tool, physicsClientId=self.client)}
        targets = sorted(touching & graspable)
        if not targets:
            return None
        body = targets[0]
        tool_pos, tool_quat = p.getBasePositionAndOrientation(self.tool, physicsClientId=self.client)
        obj_pos, obj_quat = p.getBasePositionAndOrientation(body, physicsClientId=self.client)
        inv_pos, inv_quat = p.invertTransform(tool_pos, tool_quat)
        rel_pos, rel_quat = p.multiplyTransforms(inv_pos, inv_quat, obj_pos, obj_quat)
        self.grasp_constraint = p.createConstraint(
            self.tool, -1, body, -1, p.JOINT_FIXED, (0, 0, 0), rel_pos, (0, 0, 0),
            parentFrameOrientation=rel_quat, physicsClientId=self.client)
        p.changeConstraint(self.grasp_constraint, maxForce=100, physicsClientId=self.client)
        self.grasped_body = body
        return body

    def suction_off(self) -> None:
        """Release any grasped object."""
        if self.grasp_constraint is not None:
            p.removeConstraint(self.grasp_constraint, physicsClientId=self.client)
        self.grasp_constraint = None
        self.grasped_body = None
