"""RGB-D cameras: configuration, rendering through PyBullet, and back-projection to world points.

The three default cameras (front, left, right) mimic the RealSense D415 set-up of Ravens/CLIPort
(Shridhar et al. CoRL 2021, Sec. 4.1): 480x640 images, fx = fy = 450, poses looking down at the table.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
import sys
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pybullet as p

#: Renderers :func:`render` can use: PyBullet's CPU TinyRenderer (``"tiny"``) and its EGL plugin (``"egl"``: OpenGL
#: through EGL; on a machine without a GPU, Mesa's llvmpipe software rasteriser). Datasets record the one used
#: (``meta/info.json`` ``renderer``) so that images of the two are told apart.
RENDERERS = ("tiny", "egl")
#: The renderer of a scene, and of demonstration collection, when none is asked for (and of every policy checkpoint
#: that records none). TinyRenderer, although EGL is ~1.4x faster per core: with Mesa's llvmpipe the EGL images carry
#: z-fighting stripes on the table that depend on the simulator's history (a reused scene renders the same episode
#: differently from a fresh one), so datasets would not be a function of their seeds (issue 10, session 17).
#: ``"auto"`` still chooses EGL where it loads.
RENDERER = "tiny"
_PYBULLET_RENDERERS = {"tiny": p.ER_TINY_RENDERER, "egl": p.ER_BULLET_HARDWARE_OPENGL}


@contextlib.contextmanager
def native_output_silenced():
    """Send the process's file descriptors 1 and 2 to ``/dev/null`` while inside (PyBullet's EGL plugin prints
    its GL vendor banner from C when it loads and unloads; Python-level redirection cannot catch that)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        _flush_c_stdio()   # what C buffered while silenced goes to /dev/null, not out later
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


@functools.cache
def _libc():
    """The C library of this process, or None where it cannot be opened."""
    import ctypes

    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _flush_c_stdio() -> None:
    """``fflush(NULL)`` of the C library (no-op where it cannot be called)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "fflush"):
        libc.fflush(None)


def load_egl_plugin(client: int) -> bool:
    """Load PyBullet's EGL renderer plugin into a physics client; False when it cannot be loaded here (no
    ``eglRenderer`` module or no EGL library, e.g. Debian's ``libegl-mesa0`` missing).

    Args:
        client: PyBullet physics client id.
    """
    import pkgutil

    loader = pkgutil.get_loader("eglRenderer")
    if loader is None:
        return False
    try:
        with native_output_silenced():
            return p.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=client) >= 0
    except p.error:
        return False


def check_renderer(name: Any, auto: bool = False) -> str:
    """``name`` if it is one of :data:`RENDERERS` (or ``"auto"`` when ``auto``: EGL where it loads, else tiny).

    Raises:
        ValueError: naming the valid renderers.
    """
    valid = (*RENDERERS, "auto") if auto else RENDERERS
    if name not in valid:
        raise ValueError(f"unknown renderer {name!r}; valid: {', '.join(valid)}")
    return name


@functools.cache
def egl_available() -> bool:
    """Whether PyBullet's EGL renderer plugin loads on this machine (probed once per process in a throwaway
    ``DIRECT`` client)."""
    client = p.connect(p.DIRECT)
    try:
        return load_egl_plugin(client)
    finally:
        with native_output_silenced():
            p.disconnect(physicsClientId=client)


def _finite_numbers(value: Any, n: int) -> tuple[float, ...] | None:
    """``value`` as ``n`` finite floats, or None if it is not that (bools are not numbers here)."""
    try:
        items = tuple(value)
    except TypeError:
        return None
    if len(items) != n or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items):
        return None
    floats = tuple(float(v) for v in items)
    return floats if all(math.isfinite(v) for v in floats) else None


def _check_scale(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"camera scale must be a finite number > 0 (1.0 = 480x640), got {scale!r}")
    return float(scale)


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

    Every field is validated at construction (sequences are stored as tuples of ``int`` / ``float``), because a
    bad camera renders silently wrong images (near <= 0 or far <= near gives all-NaN depth and an all-zero
    heightmap).

    Raises:
        ValueError: naming the camera, the field and its valid range: ``name`` a non-empty string,
            ``image_size`` two integers >= 1, ``focal_length`` finite > 0 px, ``position`` / ``rotation`` three
            finite numbers (m / rad), ``z_range`` finite with 0 < near < far (m).
    """

    name: str
    image_size: tuple[int, int] = (480, 640)
    focal_length: float = 450.0
    position: tuple[float, float, float] = (1.0, 0.0, 0.75)
    rotation: tuple[float, float, float] = (np.pi / 4, np.pi, -np.pi / 2)
    z_range: tuple[float, float] = (0.01, 10.0)

    def __post_init__(self) -> None:
        """Validate and normalise every field (see the class docstring for the ranges)."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"camera name must be a non-empty string, got {self.name!r}")
        where = f"camera {self.name!r}"
        try:
            size = tuple(self.image_size)
        except TypeError:
            size = ()
        if len(size) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
                                     for v in size):
            raise ValueError(f"{where}: image_size must be (height, width), two integers >= 1 pixels, "
                             f"got {self.image_size!r}")
        focal = self.focal_length
        if isinstance(focal, bool) or not isinstance(focal, numbers.Real) or not math.isfinite(focal) or focal <= 0:
            raise ValueError(f"{where}: focal_length must be a finite number > 0 pixels, got {focal!r}")
        fields: dict[str, Any] = {"image_size": tuple(int(v) for v in size), "focal_length": float(focal)}
        for name, unit in (("position", "metres"), ("rotation", "radians, XYZ Euler")):
            value = _finite_numbers(getattr(self, name), 3)
            if value is None:
                raise ValueError(f"{where}: {name} must be three finite numbers ({unit}), got {getattr(self, name)!r}")
            fields[name] = value
        z_range = _finite_numbers(self.z_range, 2)
        if z_range is None or not 0 < z_range[0] < z_range[1]:
            raise ValueError(f"{where}: z_range must be (near, far) finite metres with 0 < near < far, "
                             f"got {self.z_range!r}")
        fields["z_range"] = z_range
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (the name excluded): ``image_size`` [H, W] px, ``focal_length`` px, ``position``
        [x, y, z] m, ``rotation`` XYZ Euler rad, ``z_range`` [near, far] m (as recorded in a dataset's info.json)."""
        return {"image_size": list(self.image_size), "focal_length": self.focal_length,
                "position": list(self.position), "rotation": list(self.rotation), "z_range": list(self.z_range)}

    def scaled(self, scale: float) -> CameraConfig:
        """Return the same camera at ``scale`` times the resolution (same field of view).

        Raises:
            ValueError: ``scale`` is not a finite number > 0, or the scaled image would be under 1 pixel.
        """
        scale = _check_scale(scale)
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
    """Return :data:`DEFAULT_CAMERAS` at ``scale`` times 480x640 (same field of view).

    Raises:
        ValueError: ``scale`` is not a finite number > 0, or gives images under 1 pixel.
    """
    scale = _check_scale(scale)
    return DEFAULT_CAMERAS if scale == 1.0 else tuple(c.scaled(scale) for c in DEFAULT_CAMERAS)


def render(client: int, camera: CameraConfig, renderer: str = RENDERER, light: dict | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one camera.

    Args:
        client: PyBullet physics client id.
        camera: the camera to render.
        renderer: one of :data:`RENDERERS`; ``"egl"`` needs :func:`load_egl_plugin` on ``client`` first.
        light: extra ``getCameraImage`` lighting arguments (``lightDirection``, ``lightAmbientCoeff``, ...), as
            :func:`vlarm.sim.appearance.observe` perturbs them; None: PyBullet's default light.

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
    quiet = native_output_silenced() if renderer == "egl" else contextlib.nullcontext()
    with quiet:   # the EGL plugin prints its GL vendor from C on a client's first images
        _, _, rgba, zbuffer, seg = p.getCameraImage(
            width=w, height=h, viewMatrix=view, projectionMatrix=proj, shadow=0,
            renderer=_PYBULLET_RENDERERS[renderer], physicsClientId=client, **(light or {}),
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
