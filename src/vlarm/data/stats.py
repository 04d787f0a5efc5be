"""Per-feature statistics for ``meta/stats.json``: per episode, then aggregated over episodes.

Each feature maps to ``{"min", "max", "mean", "std", "count"}`` (lists of floats; ``count`` is the number
of frames). Shapes follow LeRobot: vectors are per dimension, ``(D,)``; scalars ``(1,)``; the colour
image is per channel, ``(3, 1, 1)``, on pixel values scaled to ``[0, 1]``; the heightmap (metres) is a
single channel over all pixels, ``(1,)``. ``std`` is the population standard deviation.
Aggregation is exact (count-weighted means and pooled variances), so stats of a dataset do not depend
on how its episodes were grouped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vlarm.data.info import COLOR_KEY, HEIGHTMAP_KEY

Stats = dict[str, dict[str, list]]

_STAT_NAMES = ("min", "max", "mean", "std")


def feature_stats(key: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of one feature over the frames of one episode.

    Args:
        key: feature key; ``observation.images.color`` and ``observation.heightmap`` reduce over pixels.
        values: ``(N, ...)`` array, N frames (images ``(N, H, W, 3)`` uint8, heightmaps ``(N, H, W)``).

    Returns:
        ``{"min", "max", "mean", "std", "count"}`` as float64 / int64 arrays (shapes: module docstring).

    Raises:
        ValueError: ``values`` has no frames.
    """
    x = np.asarray(values)
    if x.shape[0] == 0:
        raise ValueError(f"cannot compute stats of {key!r} over zero frames")
    n = x.shape[0]
    if key == COLOR_KEY:
        out = {k: v.reshape(-1, 1, 1) for k, v in _uint8_channel_stats(x).items()}
    elif key == HEIGHTMAP_KEY:
        x = x.reshape(-1)
        out = {
            "min": np.array([x.min()], dtype=np.float64),
            "max": np.array([x.max()], dtype=np.float64),
            "mean": np.array([x.mean(dtype=np.float64)]),
            "std": np.array([x.std(dtype=np.float64)]),
        }
    else:
        out = _reduce(x.reshape(n, -1).astype(np.float64))
    out["count"] = np.array([n], dtype=np.int64)
    return out


def _uint8_channel_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    # Exact per-channel stats from a 256-bin histogram: ~10x faster than float64 reductions.
    c = x.shape[-1]
    flat = np.ascontiguousarray(x, dtype=np.uint8).reshape(-1, c)
    hist = np.bincount((flat + np.arange(c, dtype=np.int64) * 256).reshape(-1), minlength=256 * c)
    hist = hist.reshape(c, 256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64) / 255.0
    total = hist.sum(1)
    mean = hist @ levels / total
    var = np.maximum(hist @ levels**2 / total - mean**2, 0.0)
    present = hist > 0
    lo = np.argmax(present, axis=1)
    hi = 255 - np.argmax(present[:, ::-1], axis=1)
    return {"min": levels[lo], "max": levels[hi], "mean": mean, "std": np.sqrt(var)}


def _reduce(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0)}


def episode_stats(columns: Mapping[str, np.ndarray]) -> Stats:
    """Stats of every feature in ``columns`` (``{key: (N, ...) array}``), as JSON-ready lists."""
    return {key: {k: v.tolist() for k, v in feature_stats(key, x).items()} for key, x in columns.items()}


def aggregate_stats(per_episode: Sequence[Mapping[str, Mapping[str, list]]]) -> Stats:
    """Combine per-episode stats into dataset stats (count-weighted mean, pooled population std).

    Args:
        per_episode: stats as returned by :func:`episode_stats`, one per episode.

    Returns:
        Stats of the union of the episodes' frames, same layout; ``{}`` when there are no episodes.

    Raises:
        ValueError: episodes disagree on feature keys.
    """
    if not per_episode:
        return {}
    keys = list(per_episode[0])
    out: Stats = {}
    for key in keys:
        try:
            parts = [ep[key] for ep in per_episode]
        except KeyError:
            raise ValueError(f"feature {key!r} is missing from some episodes' stats") from None
        counts = np.array([p["count"][0] for p in parts], dtype=np.float64)
        shape = np.asarray(parts[0]["mean"]).shape
        w = (counts / counts.sum()).reshape((-1,) + (1,) * len(shape))
        means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
        stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
        mean = (w * means).sum(0)
        var = (w * (stds**2 + (means - mean) ** 2)).sum(0)
        out[key] = {
            "min": np.min([p["min"] for p in parts], axis=0).tolist(),
            "max": np.max([p["max"] for p in parts], axis=0).tolist(),
            "mean": mean.tolist(),
            "std": np.sqrt(np.maximum(var, 0.0)).tolist(),
            "count": [int(counts.sum())],
        }
    return out
