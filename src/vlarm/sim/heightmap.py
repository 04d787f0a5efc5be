"""Top-down heightmaps fused from RGB-D cameras, and pixel <-> world transforms.

Conventions (Transporter, Zeng et al. CoRL 2020, Sec. 3; Ravens ``utils.py``): the workspace ``bounds`` is a
3x2 array ``[[x_min, x_max], [y_min, y_max], [z_min, z_max]]`` in metres. A heightmap has shape
``(H, W) = ((y_max - y_min) / pixel_size, (x_max - x_min) / pixel_size)``: rows run along +y, columns
along +x. With the CLIPort bounds and 3.125 mm pixels that is 320 x 160. Heights are metres above
``z_min``; pixels that no camera sees hold 0.
"""

from __future__ import annotations

import numpy as np

#: CLIPort / Ravens workspace bounds in metres (x, y, z rows; min, max columns).
WORKSPACE_BOUNDS = np.array([[0.25, 0.75], [-0.5, 0.5], [0.0, 0.28]], dtype=np.float64)
#: Heightmap resolution in metres per pixel.
PIXEL_SIZE = 0.003125


def heightmap_shape(bounds: np.ndarray = WORKSPACE_BOUNDS, pixel_size: float = PIXEL_SIZE) -> tuple[int, int]:
    """Return the ``(H, W)`` of a heightmap over ``bounds`` (3x2, metres) at ``pixel_size`` (metres)."""
    height = int(round((bounds[1, 1] - bounds[1, 0]) / pixel_size))
    width = int(round((bounds[0, 1] - bounds[0, 0]) / pixel_size))
    return height, width


def xyz_to_pixel(
    xyz: np.ndarray, bounds: np.ndarray = WORKSPACE_BOUNDS, pixel_size: float = PIXEL_SIZE
) -> np.ndarray:
    """Map world points to heightmap pixels.

    Args:
        xyz: ``(..., 3)`` float positions in metres (z is ignored).
        bounds: 3x2 workspace bounds in metres.
        pixel_size: metres per pixel.

    Returns:
        ``(..., 2)`` int64 ``(row, col)`` pixel indices (not clipped; may lie outside the map).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    row = np.floor((xyz[..., 1] - bounds[1, 0]) / pixel_size)
    col = np.floor((xyz[..., 0] - bounds[0, 0]) / pixel_size)
    return np.stack([row, col], axis=-1).astype(np.int64)


def pixel_to_xyz(
    pixel: np.ndarray,
    heightmap: np.ndarray | None = None,
    bounds: np.ndarray = WORKSPACE_BOUNDS,
    pixel_size: float = PIXEL_SIZE,
) -> np.ndarray:
    """Map heightmap pixels to world points at the pixel centres.

    Args:
        pixel: ``(..., 2)`` integer ``(row, col)`` indices inside the heightmap.
        heightmap: optional ``(H, W)`` float heights in metres; z is read from it (``z_min`` if None).
        bounds: 3x2 workspace bounds in metres.
        pixel_size: metres per pixel.

    Returns:
        ``(..., 3)`` float64 positions in metres.

    Raises:
        IndexError: if a pixel lies outside ``heightmap``.
    """
    pixel = np.asarray(pixel, dtype=np.int64)
    row, col = pixel[..., 0], pixel[..., 1]
    x = bounds[0, 0] + (col + 0.5) * pixel_size
    y = bounds[1, 0] + (row + 0.5) * pixel_size
    if heightmap is None:
        z = np.full_like(x, bounds[2, 0])
    else:
        h, w = heightmap.shape[:2]
        if np.any((row < 0) | (row >= h) | (col < 0) | (col >= w)):
            raise IndexError(f"pixel {pixel.tolist()} outside a heightmap of shape {(h, w)}")
        z = bounds[2, 0] + heightmap[row, col]
    return np.stack([x, y, z], axis=-1)


def fuse_heightmap(
    points: np.ndarray,
    colors: np.ndarray,
    bounds: np.ndarray = WORKSPACE_BOUNDS,
    pixel_size: float = PIXEL_SIZE,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Project a world point cloud to a top-down heightmap, keeping the highest point per pixel.

    Taking the maximum handles occlusion between views (Ravens ``get_fused_heightmap``). Points outside
    ``bounds`` are dropped.

    Args:
        points: ``(N, 3)`` float world points in metres (all cameras concatenated).
        colors: ``(N, 3)`` uint8 RGB of each point.
        bounds: 3x2 workspace bounds in metres.
        pixel_size: metres per pixel.
        labels: optional ``(N,)`` int segmentation id of each point (e.g. PyBullet body ids).

    Returns:
        ``(heightmap, colormap, labelmap)``: ``(H, W)`` float32 heights above ``z_min`` in metres,
        ``(H, W, 3)`` uint8 colours, and ``(H, W)`` int32 labels (-1 where empty) or None.
    """
    h, w = heightmap_shape(bounds, pixel_size)
    inside = (
        (points[:, 0] >= bounds[0, 0]) & (points[:, 0] < bounds[0, 1])
        & (points[:, 1] >= bounds[1, 0]) & (points[:, 1] < bounds[1, 1])
        & (points[:, 2] >= bounds[2, 0]) & (points[:, 2] < bounds[2, 1])
    )
    pts = points[inside]
    pix = xyz_to_pixel(pts, bounds, pixel_size)
    rows, cols = np.clip(pix[:, 0], 0, h - 1), np.clip(pix[:, 1], 0, w - 1)
    flat = rows * w + cols
    z = (pts[:, 2] - bounds[2, 0]).astype(np.float32)
    # Write points in ascending height: with repeated indices, numpy's fancy assignment keeps the last
    # write, so each pixel ends up with its highest point (the same device Ravens uses).
    order = np.argsort(z, kind="stable")
    flat, z = flat[order], z[order]
    heightmap = np.zeros(h * w, dtype=np.float32)
    colormap = np.zeros((h * w, 3), dtype=np.uint8)
    heightmap[flat] = z
    colormap[flat] = colors[inside][order]
    labelmap = None
    if labels is not None:
        labelmap = np.full(h * w, -1, dtype=np.int32)
        labelmap[flat] = labels[inside][order]
        labelmap = labelmap.reshape(h, w)
    return heightmap.reshape(h, w), colormap.reshape(h, w, 3), labelmap
