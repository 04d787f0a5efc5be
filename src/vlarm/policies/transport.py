"""Transport (place) operator shared by Transporter and CLIPort (Zeng et al., CoRL 2020, Sec. 3.2).

Place logits are the cross-correlation of a key feature map of the whole scene with the query features of a
crop centred on the pick pixel, for each of ``n_rotations`` rotations of the crop about +z. Instead of
re-running the query network on rotated image crops (as Ravens does), the query *features* are rotated with
``grid_sample``, and the correlation runs in the Fourier domain (``torch.fft``), which is many times faster
than ``conv2d`` with a 64x64 kernel on CPU.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def crop_around(features: torch.Tensor, centers: torch.Tensor, size: int) -> torch.Tensor:
    """Square crops of a feature map centred on given cells (zero padding outside).

    Args:
        features: ``(B, C, h, w)`` float.
        centers: ``(B, 2)`` int64 ``(row, col)`` cell indices in ``features``' grid.
        size: odd crop side in cells; the centre cell is at index ``size // 2``.

    Returns:
        ``(B, C, size, size)`` crops.

    Raises:
        ValueError: if ``size`` is even.
    """
    if size % 2 == 0:
        raise ValueError(f"crop size must be odd so the pick cell is its centre, got {size}")
    half = size // 2
    padded = F.pad(features, (half, half, half, half))
    rows = centers[:, 0].clamp(0, features.shape[2] - 1)
    cols = centers[:, 1].clamp(0, features.shape[3] - 1)
    return torch.stack(
        [
            padded[b, :, r : r + size, c : c + size]
            for b, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True))
        ]
    )


def rotate_features(crops: torch.Tensor, n_rotations: int) -> torch.Tensor:
    """Rotate square crops about their centre cell by each bin's yaw ``2 * pi * k / n_rotations``.

    A positive yaw turns +x (columns) towards +y (rows), i.e. counter-clockwise about world +z in the
    heightmap convention (rows along +y, columns along +x), so content at offset ``(drow, dcol) = (0, d)``
    moves to ``(d sin(yaw), d cos(yaw))``.

    Args:
        crops: ``(B, C, S, S)`` float with odd ``S``.
        n_rotations: number of rotation bins.

    Returns:
        ``(B, n_rotations, C, S, S)`` rotated crops (bilinear, zeros outside).
    """
    b, c, s, _ = crops.shape
    yaws = torch.arange(n_rotations, dtype=torch.float32, device=crops.device) * (2.0 * math.pi / n_rotations)
    cos, sin = torch.cos(yaws), torch.sin(yaws)
    # affine_grid maps output coords to input coords: input = R(-yaw) @ output.
    theta = torch.zeros(n_rotations, 2, 3, device=crops.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin
    theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
    grid = F.affine_grid(theta, [n_rotations, c, s, s], align_corners=True)
    grid = grid.unsqueeze(0).expand(b, -1, -1, -1, -1).reshape(b * n_rotations, s, s, 2)
    rep = crops.unsqueeze(1).expand(-1, n_rotations, -1, -1, -1).reshape(b * n_rotations, c, s, s)
    out = F.grid_sample(rep, grid.to(crops.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(b, n_rotations, c, s, s)


@functools.lru_cache(maxsize=16)
def _kernel_dft_matrices(size: int, ph: int, pw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DFT matrices that map an (S, S) kernel, flipped, to its (ph, pw // 2 + 1) half spectrum."""
    rev = size - 1 - torch.arange(size, dtype=torch.float64)  # the flip is folded into the phases
    rows = torch.arange(ph, dtype=torch.float64)
    cols = torch.arange(pw // 2 + 1, dtype=torch.float64)
    left = torch.exp(-2j * math.pi * torch.outer(rows, rev) / ph)
    right = torch.exp(-2j * math.pi * torch.outer(rev, cols) / pw)
    return left, right


def fft_correlate(key: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Centred cross-correlation of a feature map with a bank of kernels, via FFT.

    ``out[b, k, r, c] = sum_{ch, i, j} key[b, ch, r + i - S//2, c + j - S//2] * kernels[b, k, ch, i, j]``
    with zero padding outside ``key``; equal to ``conv2d(key[b:b+1], kernels[b], padding=S//2)`` for odd
    ``S``. The key goes through ``torch.fft.rfft2``; the small kernels through two dense DFT matrix products,
    which avoids zero-padding thousands of kernels to the full FFT size (about 2x faster forward + backward).

    Args:
        key: ``(B, C, h, w)`` float32 (or float64).
        kernels: ``(B, K, C, S, S)`` same dtype, odd ``S``.

    Returns:
        ``(B, K, h, w)`` correlation, same dtype as ``key``.
    """
    _, _, h, w = key.shape
    s = kernels.shape[-1]
    half = s // 2
    ph, pw = h + s - 1, w + s - 1  # linear (not circular) correlation: no wrap-around inside the output
    key_f = torch.fft.rfft2(key, s=(ph, pw))
    left, right = _kernel_dft_matrices(s, ph, pw)
    # Correlation = convolution with the flipped kernel; the output is then offset by S - 1 - half = half.
    cdtype = key_f.dtype  # complex64 for float32 inputs, complex128 for float64
    left, right = left.to(key.device, cdtype), right.to(key.device, cdtype)
    ker_f = left @ (kernels.to(cdtype) @ right)
    prod = (key_f.unsqueeze(1) * ker_f).sum(2)
    out = torch.fft.irfft2(prod, s=(ph, pw))
    return out[..., half : half + h, half : half + w].to(key.dtype)


def transport_logits(
    key: torch.Tensor, query: torch.Tensor, pick_cells: torch.Tensor, crop_cells: int, n_rotations: int
) -> torch.Tensor:
    """Place logits at feature resolution (Transporter Sec. 3.2, Eq. 3).

    Args:
        key: ``(B, C, h, w)`` key features of the scene.
        query: ``(B, C, h, w)`` query features of the scene (cropped around the pick).
        pick_cells: ``(B, 2)`` int64 pick ``(row, col)`` in the feature grid.
        crop_cells: odd crop side in cells.
        n_rotations: rotation bins.

    Returns:
        ``(B, n_rotations, h, w)`` float logits, scaled by ``1 / sqrt(C * crop_cells)`` to keep them O(1) at init.
    """
    crops = crop_around(query, pick_cells, crop_cells)
    kernels = rotate_features(crops, n_rotations)
    scale = 1.0 / math.sqrt(key.shape[1] * crop_cells)
    return fft_correlate(key, kernels) * scale
