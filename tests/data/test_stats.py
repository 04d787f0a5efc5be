"""Per-episode stats (LeRobot 0.4's fields, quantiles included) and their aggregation over episodes."""

from __future__ import annotations

import numpy as np
import pytest

from vlarm.data.stats import SKETCH_SIZE, aggregate_stats, episode_sketches, episode_stats, feature_stats


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


QUANTILE_NAMES = ("q01", "q10", "q50", "q90", "q99")
LEVELS = (0.01, 0.10, 0.50, 0.90, 0.99)


def _quantile_normalize(x, stats, eps=1e-8):
    """LeRobot 0.4's QUANTILES normaliser: 2 * (x - q01) / (q99 - q01) - 1 (eps where q99 == q01)."""
    q01, q99 = np.asarray(stats["q01"]), np.asarray(stats["q99"])
    denom = np.where(q99 - q01 == 0, eps, q99 - q01)
    return 2.0 * (x - q01) / denom - 1.0


def test_lerobot_stat_names_and_shapes_for_every_feature_kind():
    rng = np.random.default_rng(0)
    stats = episode_stats({
        "observation.images.color": rng.integers(0, 256, (3, 6, 5, 3), dtype=np.uint8),
        "observation.heightmap": rng.uniform(0, 0.2, (3, 6, 5)).astype(np.float32),
        "action": rng.normal(size=(3, 14)).astype(np.float32),
        "next.reward": np.array([0.0, 0.5, 0.5], np.float32),
        "next.done": np.array([False, False, True]),
    })
    expected = {"observation.images.color": (3, 1, 1), "observation.heightmap": (1,), "action": (14,),
                "next.reward": (1,), "next.done": (1,)}
    for key, shape in expected.items():
        assert list(stats[key]) == ["min", "max", "mean", "std", "count", *QUANTILE_NAMES]
        assert np.asarray(stats[key]["count"]).tolist() == [3]
        for name in ("min", "max", "mean", "std", *QUANTILE_NAMES):
            assert np.asarray(stats[key][name]).shape == shape, (key, name)


def test_bool_features_get_stats_as_zero_one():
    s = feature_stats("next.done", np.array([False, False, False, True]))
    assert s["min"].tolist() == [0.0] and s["max"].tolist() == [1.0] and s["mean"].tolist() == [0.25]
    np.testing.assert_allclose(s["std"], [np.sqrt(0.25 * 0.75)])
    assert s["q50"].tolist() == [0.0] and s["q99"].tolist() == [pytest.approx(0.97)]


def test_quantiles_match_numpy_for_vectors_heightmaps_and_images():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)) * [1.0, 10.0, 0.1]
    s = feature_stats("observation.state", x)
    for name, q in zip(QUANTILE_NAMES, LEVELS, strict=True):
        np.testing.assert_allclose(s[name], np.quantile(x, q, axis=0), rtol=1e-12)
    hm = rng.uniform(0, 0.3, (2, 7, 4)).astype(np.float32)
    s = feature_stats("observation.heightmap", hm)
    for name, q in zip(QUANTILE_NAMES, LEVELS, strict=True):
        np.testing.assert_allclose(s[name], [np.quantile(hm.astype(np.float64), q)], rtol=1e-12)
    # Images: skewed, with few distinct values, so interpolation between order statistics matters.
    img = np.minimum(rng.geometric(0.05, (3, 9, 7, 3)), 255).astype(np.uint8)
    img[..., 2] = rng.choice([0, 17, 255], (3, 9, 7))
    s = feature_stats("observation.images.color", img)
    for name, q in zip(QUANTILE_NAMES, LEVELS, strict=True):
        want = np.quantile(img.reshape(-1, 3) / 255.0, q, axis=0)
        np.testing.assert_allclose(s[name].ravel(), want, rtol=1e-12, atol=1e-15)
    assert (s["q01"] <= s["q50"]).all() and (s["q50"] <= s["q99"]).all()


def test_quantile_normaliser_maps_data_into_unit_range():
    rng = np.random.default_rng(2)
    parts = [rng.normal(loc=[0.5, -0.2, 0.0], scale=[0.1, 0.05, 1.0], size=(n, 3)) for n in (400, 600, 500)]
    cols = [{"observation.state": p} for p in parts]
    stats = aggregate_stats([episode_stats(c) for c in cols], [episode_sketches(c) for c in cols])
    stats = stats["observation.state"]
    x = np.concatenate(parts)
    z = _quantile_normalize(x, stats)
    inside = (np.abs(z) <= 1.0).mean(0)
    assert (inside > 0.95).all() and (inside < 1.0).all()  # ~98% inside [-1, 1], the tails outside
    assert (np.abs(np.median(z, 0)) < 0.2).all()  # symmetric data: the median maps near 0
    assert (np.abs(z) < 3).all()
    # A constant feature (e.g. a fixed quaternion component) maps to -1, not to inf / nan.
    const = aggregate_stats([episode_stats({"c": np.ones((5, 1))})])["c"]
    assert _quantile_normalize(np.ones((5, 1)), const).tolist() == [[-1.0]] * 5


def test_quantile_aggregation_without_sketches_is_lerobots_count_weighted_mean():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(30, 2))
    one = aggregate_stats([episode_stats({"a": a})])["a"]
    for name, q in zip(QUANTILE_NAMES, LEVELS, strict=True):
        np.testing.assert_allclose(one[name], np.quantile(a, q, axis=0), rtol=1e-12)
    # Several episodes: the documented rule, count-weighted mean of the episodes' quantiles ...
    parts = [rng.normal(size=(n, 2)) + i for i, n in enumerate((10, 30, 60))]
    agg = aggregate_stats([episode_stats({"a": p}) for p in parts])["a"]
    counts = np.array([len(p) for p in parts], dtype=float)
    for name, q in zip(QUANTILE_NAMES, LEVELS, strict=True):
        want = sum(c * np.quantile(p, q, axis=0) for c, p in zip(counts, parts, strict=True)) / counts.sum()
        np.testing.assert_allclose(agg[name], want, rtol=1e-12)
    # ... which is an approximation of the union's quantile: close for overlapping episodes, within [min, max].
    union = np.concatenate(parts)
    np.testing.assert_allclose(agg["q50"], np.median(union, 0), atol=0.3)
    assert (np.asarray(agg["q01"]) >= np.asarray(agg["min"])).all()
    assert (np.asarray(agg["q99"]) <= np.asarray(agg["max"])).all()
    # Images: exact for one episode too.
    img = rng.integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    agg_img = aggregate_stats([episode_stats({"observation.images.color": img})])["observation.images.color"]
    np.testing.assert_allclose(np.ravel(agg_img["q10"]), np.quantile(img.reshape(-1, 3) / 255.0, 0.1, axis=0))
    assert np.asarray(agg_img["q10"]).shape == (3, 1, 1)


def test_aggregation_of_older_episode_stats_keeps_the_common_stats():
    rng = np.random.default_rng(4)
    new = episode_stats({"a": rng.normal(size=(4, 2)), "next.done": np.array([0, 0, 0, 1], bool)})
    old = {"a": {k: new["a"][k] for k in ("min", "max", "mean", "std", "count")}}  # written before quantiles
    agg = aggregate_stats([old, new])
    assert list(agg) == ["a"] and list(agg["a"]) == ["min", "max", "mean", "std", "count"]
    assert agg["a"]["count"] == [8]
    with pytest.raises(ValueError, match="shapes"):
        aggregate_stats([episode_stats({"a": np.zeros((2, 2))}), episode_stats({"a": np.zeros((2, 3))})])


def _agg(parts_by_key):
    """Aggregate per-episode columns as the writer does (stats + sketches); ``{key: [episode arrays]}``."""
    n = len(next(iter(parts_by_key.values())))
    cols = [{k: v[i] for k, v in parts_by_key.items()} for i in range(n)]
    return aggregate_stats([episode_stats(c) for c in cols], [episode_sketches(c) for c in cols])


def test_pooled_quantiles_equal_numpy_on_the_union():
    rng = np.random.default_rng(5)
    lengths = (1, 3, 2, 1, 40)
    vec = [rng.normal(size=(n, 4)) * 3 + i for i, n in enumerate(lengths)]
    done = [np.arange(n) == n - 1 for n in lengths]
    img = [rng.integers(0, 256, (n, 4, 5, 3), dtype=np.uint8) // (i + 1) for i, n in enumerate(lengths)]
    agg = _agg({"action": vec, "next.done": done, "observation.images.color": img})
    union = {"action": np.concatenate(vec), "next.done": np.concatenate(done).astype(float),
             "observation.images.color": np.concatenate(img).reshape(-1, 3) / 255.0}
    for name, q in zip(QUANTILE_NAMES, LEVELS, strict=True):
        np.testing.assert_allclose(agg["action"][name], np.quantile(union["action"], q, axis=0), rtol=1e-12)
        np.testing.assert_allclose(agg["next.done"][name], [np.quantile(union["next.done"], q)], atol=1e-12)
        np.testing.assert_allclose(np.ravel(agg["observation.images.color"][name]),
                                   np.quantile(union["observation.images.color"], q, axis=0), rtol=1e-12)
    assert np.asarray(agg["observation.images.color"]["q90"]).shape == (3, 1, 1)


def test_one_frame_episodes_keep_a_usable_quantile_range():
    # LeRobot's rule (mean of per-episode quantiles) collapses to q01 == q99 == mean here; pooling does not.
    rng = np.random.default_rng(6)
    parts = [rng.normal(size=(1, 2)) for _ in range(200)]
    lerobot_rule = aggregate_stats([episode_stats({"a": p}) for p in parts])["a"]
    np.testing.assert_allclose(lerobot_rule["q01"], lerobot_rule["q99"])
    pooled = _agg({"a": parts})["a"]
    union = np.concatenate(parts)
    np.testing.assert_allclose(pooled["q01"], np.quantile(union, 0.01, axis=0), rtol=1e-12)
    np.testing.assert_allclose(pooled["q99"], np.quantile(union, 0.99, axis=0), rtol=1e-12)
    z = _quantile_normalize(union, pooled)
    assert ((np.abs(z) <= 1).mean(0) >= 0.97).all() and (np.abs(z) < 2).all()


def test_heightmap_quantiles_exact_for_one_episode_and_within_the_documented_bound():
    rng = np.random.default_rng(7)
    # Mostly table (0 m) plus objects: a skewed distribution with a big atom, as real heightmaps.
    hms = []
    for n in (1, 2, 3):
        hm = np.zeros((n, 20, 16), np.float32)
        hm[:, 5:12, 3:9] = rng.uniform(0.0, 0.06, (n, 7, 6))
        hm[:, 14:18] = rng.uniform(0.1, 0.28, (n, 4, 16))
        hms.append(hm)
    one = _agg({"observation.heightmap": hms[:1]})["observation.heightmap"]
    for name, q in zip(QUANTILE_NAMES, LEVELS, strict=True):
        np.testing.assert_allclose(one[name], [np.quantile(hms[0].astype(np.float64), q)], rtol=1e-9, atol=1e-12)
    agg = _agg({"observation.heightmap": hms})["observation.heightmap"]
    union = np.sort(np.concatenate([h.ravel() for h in hms]).astype(np.float64))
    slack = 1.0 / (SKETCH_SIZE - 1)  # documented: within about 1 / SKETCH_SIZE of the level (one grid step)
    for name, q in zip(QUANTILE_NAMES, LEVELS, strict=True):
        lo, hi = np.quantile(union, max(q - slack, 0.0)), np.quantile(union, min(q + slack, 1.0))
        assert lo - 1e-12 <= agg[name][0] <= hi + 1e-12, (name, lo, agg[name][0], hi)


def test_sketches_must_match_episodes():
    per = [episode_stats({"a": np.zeros((2, 1))})]
    with pytest.raises(ValueError, match="1 episodes; pass one each"):
        aggregate_stats(per, [])
