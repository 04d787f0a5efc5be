"""Per-episode stats and their exact aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from vlarm.data.stats import aggregate_stats, episode_stats, feature_stats


def test_vector_and_scalar_stats_by_hand():
    s = feature_stats("observation.state", np.array([[0.0, 1.0], [2.0, 5.0]]))
    assert s["min"].tolist() == [0.0, 1.0] and s["max"].tolist() == [2.0, 5.0]
    assert s["mean"].tolist() == [1.0, 3.0] and s["std"].tolist() == [1.0, 2.0]
    assert s["count"].tolist() == [2]
    r = feature_stats("next.reward", np.array([0.5, 0.5]))
    assert r["mean"].tolist() == [0.5] and r["std"].tolist() == [0.0]


def test_image_stats_are_per_channel_in_unit_range():
    img = np.zeros((2, 4, 4, 3), np.uint8)
    img[..., 0] = 255
    img[0, ..., 1] = 51
    s = feature_stats("observation.images.color", img)
    assert np.asarray(s["mean"]).shape == (3, 1, 1)
    np.testing.assert_allclose(s["mean"].ravel(), [1.0, 0.1, 0.0])
    np.testing.assert_allclose(s["std"].ravel(), [0.0, 0.1, 0.0], atol=1e-12)
    np.testing.assert_allclose(s["min"].ravel(), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(s["max"].ravel(), [1.0, 0.2, 0.0])


def test_heightmap_stats_are_one_channel():
    s = feature_stats("observation.heightmap", np.array([[[0.0, 0.1]], [[0.2, 0.3]]], np.float32))
    assert s["mean"].shape == (1,)
    np.testing.assert_allclose(s["mean"], [0.15], rtol=1e-6)


def test_zero_frames_rejected():
    with pytest.raises(ValueError, match="zero frames"):
        feature_stats("action", np.zeros((0, 14)))


def test_aggregation_equals_stats_of_concatenation():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 3)) * (i + 1) + i for i, n in enumerate((1, 4, 7))]
    imgs = [rng.integers(0, 256, (n, 5, 4, 3), dtype=np.uint8) for n in (1, 4, 7)]
    per = [episode_stats({"a": p, "observation.images.color": im}) for p, im in zip(parts, imgs, strict=True)]
    agg = aggregate_stats(per)
    whole = episode_stats({"a": np.concatenate(parts), "observation.images.color": np.concatenate(imgs)})
    for key in whole:
        for stat in ("min", "max", "mean", "std", "count"):
            np.testing.assert_allclose(agg[key][stat], whole[key][stat], rtol=1e-10, atol=1e-12)
    assert aggregate_stats([]) == {}
