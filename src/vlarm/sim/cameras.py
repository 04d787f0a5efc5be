"""RGB-D cameras: configuration, rendering through PyBullet, and back-projection to world points.

The three default cameras (front, left, right) mimic the RealSense D415 set-up of Ravens/CLIPort
(Shridhar et al. CoRL 2021, Sec. 4.1): 480x640 images, fx = fy = 450, poses looking down at the table.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import pybullet as p


@dataclass(frozen=True)
class CameraConfig:
    """One pinhole RGB-D camera.

    Attributes:
        name: camera name used as the observation key (``front``, ``left``, ``right``).
        image_size: ``(height, width)`` in pixels.
        focal_length: fx = fy in pixels at ``image_size``.
        position: camera centre in world coordinates, metres.
        rotation: camera orientation as XYZ Euler angles in radians (z axis looks along the view).
        z_range: ``(near, far)`` clipping planes in metres; near must be > 0.
    """

    name: str
    image_size: tuple[int, int] = (480, 640)
    focal_length: float = 450.0
    position: tuple[float, float, float] = (1.0, 0.0, 0.75)
    rotation: tuple[float, float, float] = (np.pi / 4, np.pi, -np.pi / 2)
    z_range: tuple[float, float] = (0.01, 10.0)

    def scaled(self, scale: float) -> CameraConfig:
        """Return the same camera at ``scale`` times the resolution (same field of view)."""
        h, w = self.image_size
        return replace(self, image_size=(int(round(h * scale)), int(round(w * scale))),
                       focal_length=self.focal_length * scale)

    @property
    def intrinsics(self) -> np.ndarray:
        """3x3 float64 intrinsic matrix K (principal point at the image centre)."""
        h, w = self.image_size
        return np.array([[self.focal_length, 0, w / 2], [0, self.focal_length, h / 2], [0, 0, 1]])

    @property
    def rotation_matrix(self) -> np.ndarray:
        """3x3 float64 camera-to-world rotation."""
        return np.array(p.getMatrixFromQuaternion(p.getQuaternionFromEuler(self.rotation))).reshape(3, 3)


#: CLIPort's three cameras (front, left, right) at 480x640, fx = fy = 450.
DEFAULT_CAMERAS: tuple[CameraConfig, ...] = (
    CameraConfig("front", position=(1.0, 0.0, 0.75), rotation=(np.pi / 4, np.pi, -np.pi / 2)),
    CameraConfig("left", position=(0.0, 0.5, 0.75), rotation=(np.pi / 4.5, np.pi, np.pi / 4)),
    CameraConfig("right", position=(0.0, -0.5, 0.75), rotation=(np.pi / 4.5, np.pi, 3 * np.pi / 4)),
)


def default_cameras(scale: float = 1.0) -> tuple[CameraConfig, ...]:
    """Return :data:`DEFAULT_CAMERAS` at ``scale`` times 480x640 (same field of view)."""
    return DEFAULT_CAMERAS if scale == 1.0 else tuple(c.scaled(scale) for c in DEFAULT_CAMERAS)


def render(client: int, camera: CameraConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one camera with PyBullet's CPU TinyRenderer.

    Args:
        client: PyBullet physics client id.
        camera: the camera to render.

    Returns:
        ``(rgb, depth, segmentation)``: ``(H, W, 3)`` uint8, ``(H, W)`` float32 metric depth along the
        optical axis in metres, ``(H, W)`` int32 body ids (-1 for background).
    """
    h, w = camera.image_size
    rot = camera.rotation_matrix
    look_dir = rot @ np.array([0.0, 0.0, 1.0])
    up_dir = rot @ np.array([0.0, -1.0, 0.0])
    eye = np.asarray(camera.position)
    view = p.computeViewMatrix(eye.tolist(), (eye + look_dir).tolist(), up_dir.tolist())
    # computeProjectionMatrixFOV takes the *vertical* field of view in degrees.
    fov_y = np.degrees(2 * np.arctan((h / 2) / camera.focal_length))
    near, far = camera.z_range
    proj = p.computeProjectionMatrixFOV(fov_y, w / h, near, far)
    _, _, rgba, zbuffer, seg = p.getCameraImage(
        width=w, height=h, viewMatrix=view, projectionMatrix=proj, shadow=0,
        renderer=p.ER_TINY_RENDERER, physicsClientId=client,
    )
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[..., :3]
    zbuffer = np.asarray(zbuffer, dtype=np.float32).reshape(h, w)
    depth = (2.0 * near * far) / (far + near - (2.0 * zbuffer - 1.0) * (far - near))
    seg = np.asarray(seg, dtype=np.int32).reshape(h, w)
    return rgb, np.clip(depth, near, far).astype(np.float32), seg


def depth_to_points(depth: np.ndarray, camera: CameraConfig) -> np.ndarray:
    """Back-project a metric depth image to world points.

    Args:
        depth: ``(H, W)`` float depth along the optical axis in metres.
        camera: the camera that took it.

    Returns:
        ``(H * W, 3)`` float32 world points in metres, row-major over pixels.

    Raises:
        ValueError: if the depth image does not have the camera's size.
    """
    if depth.shape != tuple(camera.image_size):
        raise ValueError(f"depth image {depth.shape} does not match camera {camera.name} {camera.image_size}")
    rays = _world_rays(camera)
    return rays * depth.reshape(-1, 1) + np.asarray(camera.position, dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _world_rays(camera: CameraConfig) -> np.ndarray:
    """``(H * W, 3)`` float32 world-frame rays scaled so that depth 1 m along the optical axis hits them."""
    h, w = camera.image_size
    k = camera.intrinsics
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=-1).reshape(-1, 3)
    return (cam @ camera.rotation_matrix.T).astype(np.float32)
