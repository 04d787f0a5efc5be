"""Tests of the transport operator: FFT correlation, crop rotation, rotation bins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlarm.policies.processing import bin_to_yaw, quat_to_yaw, yaw_to_bin, yaw_to_quat
from vlarm.policies.transport import crop_around, fft_correlate, rotate_features, transport_logits


def test_fft_correlation_equals_conv2d():
    torch.manual_seed(0)
    key = torch.randn(2, 3, 20, 12, dtype=torch.float64)
    kernels = torch.randn(2, 5, 3, 7, 7, dtype=torch.float64)
    out = fft_correlate(key, kernels)
    assert out.shape == (2, 5, 20, 12)
    for b in range(2):
        ref = F.conv2d(key[b : b + 1], kernels[b], padding=3)[0]
        torch.testing.assert_close(out[b], ref, atol=1e-9, rtol=1e-9)


def test_crop_around_centres_on_cell_and_pads():
    feats = torch.arange(5 * 4, dtype=torch.float32).reshape(1, 1, 5, 4)
    crop = crop_around(feats, torch.tensor([[0, 3]]), 3)
    assert crop[0, 0, 1, 1] == feats[0, 0, 0, 3]
    assert crop[0, 0, 0].abs().sum() == 0  # above row 0: zero padding
    with pytest.raises(ValueError, match="odd"):
        crop_around(feats, torch.tensor([[0, 0]]), 4)


def test_rotate_features_turns_x_towards_y():
    crop = torch.zeros(1, 1, 11, 11)
    crop[0, 0, 5, 5 + 4] = 1.0  # offset (drow, dcol) = (0, +4)
    rot = rotate_features(crop, 4)  # bins at 0, 90, 180, 270 degrees
    assert torch.equal(rot[0, 0], crop[0])
    assert rot[0, 1, 0, 5 + 4, 5] == pytest.approx(1.0, abs=1e-5)  # 90 deg: +x -> +y (down the rows)
    assert rot[0, 2, 0, 5, 5 - 4] == pytest.approx(1.0, abs=1e-5)


def test_transport_peaks_at_matching_place_and_rotation():
    # The key is the query scene rotated by 90 degrees and moved: the best match is that bin at that cell.
    torch.manual_seed(1)
    ramp = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2])  # asymmetric, so a bar and its reverse do not tie
    query = torch.zeros(1, 2, 24, 24)
    query[0, :, 10, 10:15] = torch.stack([ramp, 0.5 * ramp])  # a bar pointing +x from the pick cell (10, 10)
    key = torch.zeros(1, 2, 24, 24)
    key[0, :, 15:20, 6] = torch.stack([ramp, 0.5 * ramp])  # the same bar pointing +y from (15, 6)
    logits = transport_logits(key, query, torch.tensor([[10, 10]]), 9, 4)
    k, r, c = np.unravel_index(int(logits.argmax()), logits.shape[1:])
    assert (k, r, c) == (1, 15, 6)


def test_rotation_bins_round_trip():
    for k in range(36):
        assert yaw_to_bin(bin_to_yaw(k, 36), 36) == k
    assert yaw_to_bin(-math.radians(10), 36) == 35
    assert yaw_to_bin(2 * math.pi + math.radians(4), 36) == 0
    assert bin_to_yaw(9, 36) == pytest.approx(math.pi / 2)
    for yaw in (-2.0, 0.3, 3.0):
        assert quat_to_yaw(yaw_to_quat(yaw)) == pytest.approx(yaw, abs=1e-6)
