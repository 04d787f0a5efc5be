"""Tests of the SE(2) augmentation (Ravens ``perturb``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlarm.policies.augmentation import perturb, se2_matrix, transform_pixels, warp_images

from .conftest import make_frame


def test_labels_stay_on_same_content():
    frame = make_frame()
    pixels = np.array([[10, 8], [50, 24]])
    colormap0 = frame["colormap"].copy()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        colormap, heightmap, new_pixels, transform = perturb(frame["colormap"], frame["heightmap"], pixels, rng)
        assert colormap.dtype == np.uint8 and heightmap.dtype == np.float32
        assert np.all((new_pixels >= 0) & (new_pixels < [64, 32]))
        (r0, c0), (r1, c1) = new_pixels
        assert tuple(colormap[r0, c0]) == (220, 20, 20)
        assert heightmap[r0, c0] == np.float32(0.04)
        assert tuple(colormap[r1, c1]) == (20, 20, 220)
    np.testing.assert_array_equal(frame["colormap"], colormap0)  # pure: input untouched


def test_same_seed_same_perturbation():
    frame = make_frame()
    px = np.array([[10, 8]])
    a = perturb(frame["colormap"], frame["heightmap"], px, np.random.default_rng(3))
    b = perturb(frame["colormap"], frame["heightmap"], px, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])


def test_identity_and_translation_warp():
    img = torch.arange(64 * 32, dtype=torch.float32).reshape(1, 1, 64, 32)
    out = warp_images(img, np.eye(3)[None], (64, 32), mode="nearest")
    torch.testing.assert_close(out, img)
    shift = se2_matrix(0.0, (3.0, -2.0), (64, 32))
    out = warp_images(img, shift[None], (64, 32), mode="nearest")
    assert out[0, 0, 10 - 2, 5 + 3] == img[0, 0, 10, 5]
    assert tuple(transform_pixels(np.array([[10, 5]]), shift)[0]) == (8, 8)
    # A stride-2 feature map warped by the same transform moves by half the pixels.
    feat = torch.zeros(1, 1, 32, 16)
    feat[0, 0, 10, 4] = 1.0
    out = warp_images(feat, se2_matrix(0.0, (4.0, 2.0), (64, 32))[None], (64, 32))
    assert float(out[0, 0, 11, 6]) == pytest.approx(1.0, abs=1e-5)
