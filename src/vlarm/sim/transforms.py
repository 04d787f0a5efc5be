"""Rigid transforms on ``(position, quaternion_xyzw)`` pose tuples (pure numpy + PyBullet math)."""

from __future__ import annotations

import numpy as np
import pybullet as p

Pose = tuple[np.ndarray, np.ndarray]


def multiply(a: Pose, b: Pose) -> Pose:
    """Compose poses: ``a * b`` (b expressed in a's frame). Positions in metres, quaternions xyzw."""
    pos, quat = p.multiplyTransforms(a[0], a[1], b[0], b[1])
    return np.asarray(pos), np.asarray(quat)


def invert(a: Pose) -> Pose:
    """Inverse of a pose."""
    pos, quat = p.invertTransform(a[0], a[1])
    return np.asarray(pos), np.asarray(quat)


def yaw_to_quat(yaw: float) -> np.ndarray:
    """Quaternion xyzw of a rotation by ``yaw`` radians about +z."""
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def quat_to_yaw(quat) -> float:
    """Yaw (rotation about +z, radians in (-pi, pi]) of a quaternion xyzw."""
    x, y, z, w = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def pose_to_array(pose: Pose) -> np.ndarray:
    """Flatten a pose to ``(7,)`` float32 ``[x, y, z, qx, qy, qz, qw]``."""
    return np.concatenate([np.asarray(pose[0], np.float32), np.asarray(pose[1], np.float32)])


def array_to_pose(arr) -> Pose:
    """Inverse of :func:`pose_to_array`; raises ValueError unless ``arr`` has 7 numbers."""
    arr = np.asarray(arr, dtype=np.float64).reshape(-1)
    if arr.shape != (7,):
        raise ValueError(f"a pose needs 7 numbers (xyz + quaternion xyzw), got shape {arr.shape}")
    return arr[:3], arr[3:]
