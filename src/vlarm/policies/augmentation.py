"""SE(2) data augmentation for top-down pick-and-place frames (Ravens ``perturb``, Transporter Sec. 4).

A random rotation about the image centre plus a translation is applied to the colormap, the heightmap and the
pixel labels together; the transform is resampled until every label stays inside the image. The relative place
yaw is unchanged by a rigid motion of the whole scene, so it is not touched.

Transforms are ``(3, 3)`` float64 matrices acting on homogeneous pixel coordinates ``(x=col, y=row, 1)``,
mapping a source pixel to its destination. The same transform can warp feature maps of any stride
(:func:`warp_images`), so cached backbone features stay aligned with augmented images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def se2_matrix(theta: float, translation: tuple[float, float], image_shape: tuple[int, int]) -> np.ndarray:
    """Pixel-space SE(2) transform: rotate by ``theta`` radians about the image centre, then translate.

    Args:
        theta: rotation angle in radians (positive turns +x (columns) towards +y (rows)).
        translation: ``(dx, dy)`` shift in pixels along columns / rows.
        image_shape: ``(H, W)``.

    Returns:
        ``(3, 3)`` float64 matrix mapping source ``(col, row, 1)`` to destination ``(col, row, 1)``.
    """
    h, w = image_shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    to_origin = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, cx + translation[0]], [0.0, 1.0, cy + translation[1]], [0.0, 0.0, 1.0]])
    return back @ rot @ to_origin


def transform_pixels(pixels: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply a pixel-space transform to ``(N, 2)`` int ``(row, col)`` pixels -> ``(N, 2)`` int64 (rounded)."""
    pixels = np.asarray(pixels).reshape(-1, 2)
    xy1 = np.stack([pixels[:, 1], pixels[:, 0], np.ones(len(pixels))], axis=0).astype(np.float64)
    out = transform @ xy1
    return np.stack([np.round(out[1]), np.round(out[0])], axis=1).astype(np.int64)


def _normalised_theta(transforms: np.ndarray, image_shape: tuple[int, int]) -> torch.Tensor:
    """``(B, 3, 3)`` pixel transforms -> ``(B, 2, 3)`` ``affine_grid`` thetas (output -> input,
    align_corners=False)."""
    h, w = image_shape
    # pixel index p -> normalised (2p + 1) / size - 1, the pixel-centre convention of align_corners=False.
    norm = np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])
    thetas = norm @ np.linalg.inv(transforms) @ np.linalg.inv(norm)
    return torch.as_tensor(thetas[:, :2, :], dtype=torch.float32)


def warp_images(
    images: torch.Tensor, transforms: np.ndarray, image_shape: tuple[int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """Warp a batch of images or feature maps by full-resolution pixel transforms.

    Args:
        images: ``(B, C, h, w)`` float tensor; ``(h, w)`` may be ``image_shape`` divided by any stride.
        transforms: ``(B, 3, 3)`` pixel-space transforms in full-resolution pixels (:func:`se2_matrix`).
        image_shape: full-resolution ``(H, W)`` the transforms refer to.
        mode: ``"bilinear"`` (features) or ``"nearest"`` (images, keeps heights and colours crisp).

    Returns:
        ``(B, C, h, w)`` warped tensor; areas coming from outside the image are 0.
    """
    theta = _normalised_theta(np.asarray(transforms, dtype=np.float64).reshape(-1, 3, 3), image_shape)
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode=mode, padding_mode="zeros", align_corners=False)


def sample_perturbation(
    pixels: np.ndarray,
    image_shape: tuple[int, int],
    rng: np.random.Generator,
    theta_sigma: float = math.radians(60.0),
    translation_sigma: float = 20.0,
    max_tries: int = 100,
) -> np.ndarray:
    """Sample an SE(2) transform that keeps every label pixel inside the image (Ravens ``get_random_image_transform``).

    Args:
        pixels: ``(N, 2)`` int ``(row, col)`` label pixels.
        image_shape: ``(H, W)``.
        rng: numpy generator (the only source of randomness).
        theta_sigma: std of the rotation angle in radians (Ravens: 60 degrees).
        translation_sigma: std of the translation in pixels.
        max_tries: resampling attempts before falling back to the identity.

    Returns:
        ``(3, 3)`` float64 pixel-space transform (identity if no valid sample was found).
    """
    h, w = image_shape
    for _ in range(max_tries):
        theta = float(rng.normal(0.0, theta_sigma))
        trans = rng.normal(0.0, translation_sigma, size=2)
        transform = se2_matrix(theta, (float(trans[0]), float(trans[1])), image_shape)
        out = transform_pixels(pixels, transform)
        if np.all((out[:, 0] >= 0) & (out[:, 0] < h) & (out[:, 1] >= 0) & (out[:, 1] < w)):
            return transform
    return np.eye(3)


def perturb(
    colormap: np.ndarray,
    heightmap: np.ndarray,
    pixels: np.ndarray,
    rng: np.random.Generator,
    theta_sigma: float = math.radians(60.0),
    translation_sigma: float = 20.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Randomly rotate and translate one frame and its pixel labels consistently (Ravens ``perturb``).

    Pure: the inputs are not modified and all randomness comes from ``rng``.

    Args:
        colormap: ``(H, W, 3)`` uint8 RGB.
        heightmap: ``(H, W)`` float32 heights in metres.
        pixels: ``(N, 2)`` int ``(row, col)`` labels (e.g. pick and place pixels).
        rng: numpy generator.
        theta_sigma: std of the rotation in radians.
        translation_sigma: std of the translation in pixels.

    Returns:
        ``(colormap, heightmap, pixels, transform)``: warped ``(H, W, 3)`` uint8 and ``(H, W)`` float32 images
        (nearest-neighbour, zeros outside), ``(N, 2)`` int64 labels inside the image, and the ``(3, 3)`` transform.
    """
    shape = heightmap.shape[:2]
    transform = sample_perturbation(pixels, shape, rng, theta_sigma, translation_sigma)
    stacked = np.concatenate([colormap.astype(np.float32), heightmap[..., None].astype(np.float32)], axis=-1)
    warped = warp_images(torch.from_numpy(stacked).permute(2, 0, 1)[None], transform[None], shape, mode="nearest")
    warped = warped[0].permute(1, 2, 0).numpy()
    new_pixels = transform_pixels(pixels, transform)
    return warped[..., :3].round().astype(np.uint8), warped[..., 3].copy(), new_pixels, transform
