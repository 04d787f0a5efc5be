"""Input processing and label conversion shared by the pick-and-place policies.

Network input follows Ravens / Transporter (Zeng et al., CoRL 2020, Sec. 4; REFERENCE.md Sec. 2): a 6-channel
image made of the normalised RGB colormap and the heightmap repeated three times. Labels follow the Ravens
agents: pick and place pixels in the top-down heightmap and the place yaw relative to the pick yaw,
discretised into
``n_rotations`` bins where bin ``k`` is the yaw ``2 * pi * k / n_rotations`` about +z.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from vlarm.sim.heightmap import PIXEL_SIZE, WORKSPACE_BOUNDS, pixel_to_xyz, xyz_to_pixel
from vlarm.sim.transforms import quat_to_yaw, yaw_to_quat  # noqa: F401 - re-exported

#: Mean / std of colormap channels after scaling to [0, 1] (Ravens' statistics of its tabletop scenes).
COLOR_MEAN = 0.18877631
COLOR_STD = 0.07276466
#: Mean / std of heights in metres (Ravens).
DEPTH_MEAN = 0.00509261
DEPTH_STD = 0.00903967


def make_network_input(
    colormap: torch.Tensor,
    heightmap: torch.Tensor,
    color_mean: Sequence[float] = (COLOR_MEAN,) * 3,
    color_std: Sequence[float] = (COLOR_STD,) * 3,
    depth_mean: float = DEPTH_MEAN,
    depth_std: float = DEPTH_STD,
) -> torch.Tensor:
    """Build the 6-channel Transporter input (Transporter Sec. 4, Ravens ``preprocess``).

    Args:
        colormap: ``(B, H, W, 3)`` uint8 (or float in [0, 255]) RGB top-down colormap.
        heightmap: ``(B, H, W)`` float32 heights in metres above the table.
        color_mean: per-channel mean of colours scaled to [0, 1] (3 floats). The defaults are Ravens'
            constants; trained policies carry their dataset's own (``meta/stats.json``, see
            :func:`normalization_from_stats`).
        color_std: per-channel standard deviation of colours scaled to [0, 1] (3 floats, > 0).
        depth_mean: mean height in metres.
        depth_std: standard deviation of heights in metres (> 0).

    Returns:
        ``(B, 6, H, W)`` float32: normalised RGB, then the normalised height repeated 3 times.
    """
    mean = torch.tensor(color_mean, dtype=torch.float32, device=colormap.device).view(1, 3, 1, 1)
    std = torch.tensor(color_std, dtype=torch.float32, device=colormap.device).view(1, 3, 1, 1)
    rgb = (colormap.permute(0, 3, 1, 2).float().div(255.0) - mean) / std
    depth = heightmap.float().sub(depth_mean).div(depth_std).unsqueeze(1).expand(-1, 3, -1, -1)
    return torch.cat([rgb, depth], dim=1)


#: The policy config fields :func:`normalization_from_stats` fills (``vlarm train --normalization`` sets them).
NORMALIZATION_FIELDS = ("color_mean", "color_std", "depth_mean", "depth_std")


def normalization_from_stats(stats: dict) -> dict[str, tuple[float, ...] | float]:
    """Input statistics for :func:`make_network_input` from a dataset's ``meta/stats.json`` (LeRobot keeps the
    dataset's stats with the policy in the same way).

    Args:
        stats: the parsed ``meta/stats.json`` (:mod:`vlarm.data.stats` layout): ``observation.images.color``
            per channel on [0, 1], ``observation.heightmap`` in metres.

    Returns:
        ``{"color_mean": (3,), "color_std": (3,), "depth_mean": float, "depth_std": float}``, ready to pass as
        policy config fields.

    Raises:
        ValueError: a feature is missing, or a standard deviation is not finite and positive (a constant
            image channel cannot be normalised).
    """
    from vlarm.data.info import COLOR_KEY, HEIGHTMAP_KEY

    out: dict[str, tuple[float, ...] | float] = {}
    for key, prefix, size in ((COLOR_KEY, "color", 3), (HEIGHTMAP_KEY, "depth", 1)):
        if key not in stats or "mean" not in stats[key] or "std" not in stats[key]:
            raise ValueError(f"dataset stats have no mean/std for {key!r} (found: {sorted(stats)}); "
                             "rebuild meta/stats.json or train with --normalization ravens")
        mean = np.asarray(stats[key]["mean"], dtype=np.float64).reshape(-1)
        std = np.asarray(stats[key]["std"], dtype=np.float64).reshape(-1)
        if mean.size != size or std.size != size or not np.all(np.isfinite(mean)) \
                or not np.all(np.isfinite(std)) or np.any(std <= 0):
            raise ValueError(f"dataset stats of {key!r} are unusable for normalisation: mean {mean.tolist()}, "
                             f"std {std.tolist()} (need {size} finite values, std > 0)")
        if size == 1:
            out[f"{prefix}_mean"], out[f"{prefix}_std"] = float(mean[0]), float(std[0])
        else:
            out[f"{prefix}_mean"] = tuple(float(v) for v in mean)
            out[f"{prefix}_std"] = tuple(float(v) for v in std)
    return out


def rgb_chw(colormap: torch.Tensor) -> torch.Tensor:
    """Return ``(B, 3, H, W)`` float32 RGB in [0, 255] from a ``(B, H, W, 3)`` uint8 colormap (backbone input)."""
    return colormap.permute(0, 3, 1, 2).float()


def bin_to_yaw(k: int | np.ndarray | torch.Tensor, n_rotations: int) -> float | np.ndarray | torch.Tensor:
    """Yaw in radians of rotation bin ``k``: ``2 * pi * k / n_rotations`` (Transporter Sec. 3.2, 36 bins)."""
    return 2.0 * math.pi * k / n_rotations


def yaw_to_bin(yaw: float | np.ndarray, n_rotations: int) -> int | np.ndarray:
    """Nearest rotation bin of a yaw in radians (any real value; wrapped modulo 2*pi) -> int in [0, n)."""
    k = np.round(np.asarray(yaw, dtype=np.float64) / (2.0 * math.pi / n_rotations)).astype(np.int64) % n_rotations
    return int(k) if k.ndim == 0 else k


def yaw_to_bin_torch(yaw: torch.Tensor, n_rotations: int) -> torch.Tensor:
    """Torch version of :func:`yaw_to_bin`: ``(B,)`` float radians -> ``(B,)`` int64 bins."""
    return torch.round(yaw.double() / (2.0 * math.pi / n_rotations)).long() % n_rotations


def frame_to_labels(
    frame: dict,
    image_shape: tuple[int, int] = (320, 160),
    bounds: np.ndarray = WORKSPACE_BOUNDS,
    pixel_size: float = PIXEL_SIZE,
) -> dict[str, np.ndarray | float]:
    """Convert a dataset frame's world poses into pixel / rotation labels (Ravens agent ``get_sample``).

    Args:
        frame: dict with ``"pick_pose"`` and ``"place_pose"``, each ``(7,)`` float ``xyz`` metres + quaternion xyzw.
        image_shape: heightmap ``(H, W)``; pixels are clipped into it.
        bounds: 3x2 workspace bounds in metres.
        pixel_size: metres per pixel.

    Returns:
        ``{"pick_pixel": (2,) int64 (row, col), "place_pixel": (2,) int64, "place_rotation": float}`` where
        ``place_rotation`` is ``yaw(place) - yaw(pick)`` wrapped to [0, 2*pi) radians.
    """
    pick = np.asarray(frame["pick_pose"], dtype=np.float64)
    place = np.asarray(frame["place_pose"], dtype=np.float64)
    hi = np.array(image_shape) - 1
    pick_px = np.clip(xyz_to_pixel(pick[:3], bounds, pixel_size), 0, hi)
    place_px = np.clip(xyz_to_pixel(place[:3], bounds, pixel_size), 0, hi)
    rot = (quat_to_yaw(place[3:]) - quat_to_yaw(pick[3:])) % (2.0 * math.pi)
    return {
        "pick_pixel": pick_px.astype(np.int64),
        "place_pixel": place_px.astype(np.int64),
        "place_rotation": rot,
    }


def pixel_to_pose(
    pixel: np.ndarray,
    heightmap: np.ndarray,
    yaw: float = 0.0,
    bounds: np.ndarray = WORKSPACE_BOUNDS,
    pixel_size: float = PIXEL_SIZE,
) -> np.ndarray:
    """Pose ``(7,)`` float32 (xyz metres + quaternion xyzw) at a heightmap pixel, z read from ``heightmap``.

    Args:
        pixel: ``(2,)`` int (row, col) inside the heightmap.
        heightmap: ``(H, W)`` float heights in metres.
        yaw: rotation about +z in radians.
        bounds: 3x2 workspace bounds in metres.
        pixel_size: metres per pixel.

    Raises:
        IndexError: if the pixel lies outside the heightmap.
    """
    xyz = pixel_to_xyz(np.asarray(pixel), heightmap, bounds, pixel_size)
    return np.concatenate([xyz, yaw_to_quat(yaw)]).astype(np.float32)
