"""Per-feature statistics for ``meta/stats.json``: per episode, then aggregated over episodes.

Each feature maps to the stats LeRobot 0.4 writes (``lerobot.datasets.compute_stats``): ``min``, ``max``,
``mean``, ``std``, ``count`` and the quantiles ``q01``, ``q10``, ``q50``, ``q90``, ``q99`` (lists of floats;
``count`` is the number of frames, shape ``(1,)``), so LeRobot's normalisers work on a vlarm dataset in
every mode: MEAN_STD, MIN_MAX and QUANTILES (``2 * (x - q01) / (q99 - q01) - 1``). Shapes follow LeRobot:
vectors are per dimension, ``(D,)``; scalars ``(1,)``; the colour image is per channel, ``(3, 1, 1)``, on
pixel values scaled to ``[0, 1]``; the heightmap (metres) is a single channel over all pixels, ``(1,)``.
Boolean features (``next.done``) get stats too, as LeRobot gives them, on the values as 0/1. ``std`` is the
population standard deviation.

Per episode everything is exact: quantiles are numpy's default (``np.quantile``, linear interpolation
between order statistics) over the episode's values (for the colour image computed from its exact 256-bin
histogram, which gives the same numbers); LeRobot approximates them with a 5000-bin histogram.

Aggregation over episodes (:func:`aggregate_stats`): ``min``, ``max``, ``mean``, ``std`` and ``count`` are
exact (count-weighted means, pooled variances), so they do not depend on how the frames were grouped into
episodes. Quantiles cannot be combined exactly from per-episode quantiles, and LeRobot 0.4's rule (the
count-weighted mean of the episodes' ``qXX``) is badly off for vlarm's short episodes: with one frame per
episode every quantile becomes the mean, so ``q01 == q99`` and the QUANTILES normaliser divides by ~0. So each
episode also keeps a small *quantile sketch* (:func:`quantile_sketch`, stored in its data file's record),
and the dataset's quantiles are those of the pooled sketches:

- colour image: the episode's 256-bin histogram per channel: the union's quantiles are exact;
- features with at most :data:`SKETCH_SIZE` values per dimension in an episode (state, action, reward,
  done, indices: vlarm episodes have a few frames): the values themselves, so exact as well;
- larger features (the heightmap, ``N x H x W`` values per episode): the episode's quantiles at
  :data:`SKETCH_SIZE` evenly spaced levels, each standing for ``1 / SKETCH_SIZE`` of its values, so a pooled
  quantile is within about ``1 / SKETCH_SIZE`` (0.4 percentage points) of the requested level, and exact for
  one episode.

Pooled quantiles use the same definition as ``np.quantile`` on the multiset the sketches describe. Without
sketches (:func:`aggregate_stats` called with per-episode stats only) the quantiles fall back to LeRobot's
count-weighted mean of the episodes' ``qXX``; episodes written by a vlarm older than the quantiles have none,
and a dataset that contains any of them gets no quantiles (recollect it to get them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vlarm.data.info import COLOR_KEY, HEIGHTMAP_KEY

Stats = dict[str, dict[str, list]]

#: Quantile levels LeRobot 0.4 writes (``DEFAULT_QUANTILES``) and their stat names.
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_NAMES = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
_STAT_NAMES = ("min", "max", "mean", "std")
#: Values per dimension an episode keeps for aggregating quantiles (see the module docstring).
SKETCH_SIZE = 257


def feature_stats(key: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of one feature over the frames of one episode.

    Args:
        key: feature key; ``observation.images.color`` and ``observation.heightmap`` reduce over pixels.
        values: ``(N, ...)`` array, N frames (images ``(N, H, W, 3)`` uint8, heightmaps ``(N, H, W)``
            metres, vectors ``(N, D)``, scalars ``(N,)``; bool is taken as 0/1).

    Returns:
        ``{"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}`` as float64 / int64
        arrays (shapes and quantile definition: module docstring).

    Raises:
        ValueError: ``values`` has no frames.
    """
    x = np.asarray(values)
    if x.shape[0] == 0:
        raise ValueError(f"cannot compute stats of {key!r} over zero frames")
    n = x.shape[0]
    if key == COLOR_KEY:
        stats = {k: v.reshape(-1, 1, 1) for k, v in _uint8_channel_stats(x).items()}
    elif key == HEIGHTMAP_KEY:
        stats = _reduce(x.reshape(-1, 1).astype(np.float64))
    else:
        stats = _reduce(x.reshape(n, -1).astype(np.float64))
    out = {k: stats[k] for k in _STAT_NAMES}
    out["count"] = np.array([n], dtype=np.int64)
    out.update({k: stats[k] for k in QUANTILE_NAMES})
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
    out = {"min": levels[lo], "max": levels[hi], "mean": mean, "std": np.sqrt(var)}
    out.update(zip(QUANTILE_NAMES, _weighted_quantiles(np.repeat(levels[:, None], c, 1), hist.T), strict=True))
    return out


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``np.quantile`` (linear method) of a multiset per column, at :data:`QUANTILES`.

    Args:
        values: ``(K, C)`` values, any order.
        weights: ``(K, C)`` non-negative multiplicities (need not be integers).

    Returns:
        ``(len(QUANTILES), C)`` float64: with integer weights exactly ``np.quantile`` of the values repeated
        by their weights; otherwise the same interpolation between the ``k``-th smallest values.
    """
    order = np.argsort(values, axis=0, kind="stable")
    v = np.take_along_axis(np.asarray(values, dtype=np.float64), order, axis=0)
    cum = np.cumsum(np.take_along_axis(np.asarray(weights, dtype=np.float64), order, axis=0), axis=0)
    out = np.empty((len(QUANTILES), v.shape[1]))
    for c in range(v.shape[1]):
        n, last = cum[-1, c], len(cum) - 1
        # The k-th smallest value (0-based) is the first whose cumulative weight exceeds k.
        pos = np.asarray(QUANTILES) * (n - 1)
        below = np.floor(pos)
        lo = np.minimum(np.searchsorted(cum[:, c], below, side="right"), last)
        hi = np.minimum(np.searchsorted(cum[:, c], np.minimum(below + 1, n - 1), side="right"), last)
        out[:, c] = v[lo, c] + (v[hi, c] - v[lo, c]) * (pos - below)
    return out


def _reduce(x: np.ndarray) -> dict[str, np.ndarray]:
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0)}
    out.update(zip(QUANTILE_NAMES, np.quantile(x, QUANTILES, axis=0), strict=True))
    return out


def episode_stats(columns: Mapping[str, np.ndarray]) -> Stats:
    """Stats of every feature in ``columns`` (``{key: (N, ...) array}``), as JSON-ready lists."""
    return {key: {k: v.tolist() for k, v in feature_stats(key, x).items()} for key, x in columns.items()}


def quantile_sketch(key: str, values: np.ndarray) -> dict[str, Any]:
    """What one episode keeps of a feature so that dataset quantiles can be pooled (module docstring).

    Args:
        key: feature key, as in :func:`feature_stats`.
        values: ``(N, ...)`` array of the episode's N frames, as in :func:`feature_stats`.

    Returns:
        A JSON-ready dict, C being the number of stat channels (3 for the colour image, 1 for the heightmap,
        D for a vector feature), of one of three forms:

        - ``{"counts": C lists of 256 ints}``: the colour image's histogram of pixel values ``0..255``
          (standing for ``value / 255``);
        - ``{"values": C lists of n floats}``: all n values of each channel (n <= :data:`SKETCH_SIZE`);
        - ``{"values": C lists of SKETCH_SIZE floats, "n": n}``: each channel's quantiles at levels
          ``linspace(0, 1, SKETCH_SIZE)`` (rounded to float32 precision), each standing for
          ``n / SKETCH_SIZE`` of its n values.

    Raises:
        ValueError: ``values`` has no frames.
    """
    x = np.asarray(values)
    if x.shape[0] == 0:
        raise ValueError(f"cannot compute a quantile sketch of {key!r} over zero frames")
    if key == COLOR_KEY:
        c = x.shape[-1]
        flat = np.ascontiguousarray(x, dtype=np.uint8).reshape(-1, c)
        hist = np.bincount((flat + np.arange(c, dtype=np.int64) * 256).reshape(-1), minlength=256 * c)
        return {"counts": hist.reshape(c, 256).tolist()}
    cols = x.reshape(-1, 1) if key == HEIGHTMAP_KEY else x.reshape(x.shape[0], -1)
    cols = cols.astype(np.float64)
    n = cols.shape[0]
    if n <= SKETCH_SIZE:
        return {"values": cols.T.tolist()}
    grid = np.quantile(cols, np.linspace(0.0, 1.0, SKETCH_SIZE), axis=0).T
    # float32 precision keeps the JSON short (the grid is an approximation anyway).
    return {"values": [[float(str(v)) for v in row.astype(np.float32)] for row in grid], "n": int(n)}


def _sketch_points(sketch: Mapping[str, Any], c: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values, weights)`` of channel ``c`` of a :func:`quantile_sketch`."""
    if "counts" in sketch:
        return np.arange(256, dtype=np.float64) / 255.0, np.asarray(sketch["counts"][c], dtype=np.float64)
    v = np.asarray(sketch["values"][c], dtype=np.float64)
    return v, np.full(len(v), float(sketch.get("n", len(v))) / len(v))


def episode_sketches(columns: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """:func:`quantile_sketch` of every feature in ``columns`` (``{key: (N, ...) array}``)."""
    return {key: quantile_sketch(key, x) for key, x in columns.items()}


def _pooled_quantiles(sketches: Sequence[Mapping[str, Any]], shape: tuple[int, ...]) -> dict[str, list]:
    channels = int(np.prod(shape))
    rows = []
    for c in range(channels):
        points = [_sketch_points(s, c) for s in sketches]
        v = np.concatenate([p[0] for p in points])
        w = np.concatenate([p[1] for p in points])
        rows.append(_weighted_quantiles(v[:, None], w[:, None])[:, 0])
    q = np.stack(rows, axis=1)  # (len(QUANTILES), C)
    return {name: q[i].reshape(shape).tolist() for i, name in enumerate(QUANTILE_NAMES)}


def aggregate_stats(
    per_episode: Sequence[Mapping[str, Mapping[str, list]]],
    sketches: Sequence[Mapping[str, Mapping[str, Any]] | None] | None = None,
) -> Stats:
    """Combine per-episode stats into dataset stats (the fields LeRobot 0.4's ``aggregate_stats`` writes).

    ``min`` / ``max`` / ``mean`` / ``std`` / ``count`` are those of the union of the episodes' frames
    (count-weighted mean, pooled population std). Quantiles are pooled from the episodes' sketches when
    every episode has one for the feature (exact, except a bounded approximation for the heightmap, see the
    module docstring); otherwise each ``qXX`` is LeRobot's count-weighted mean of the episodes' ``qXX``
    (exact only for one episode).

    Args:
        per_episode: stats as returned by :func:`episode_stats`, one per episode.
        sketches: optional, one per episode, as returned by :func:`episode_sketches` (None for an episode
            that has none).

    Returns:
        Stats of the union of the episodes' frames, same layout; ``{}`` when there are no episodes. Only
        features and stats that every episode has are aggregated: episodes written by an older vlarm (no
        quantiles, no ``next.done``) mixed with newer ones give the older set of stats.

    Raises:
        ValueError: a feature's stats have different shapes in different episodes, or ``sketches`` does not
            have one entry per episode.
    """
    if not per_episode:
        return {}
    if sketches is not None and len(sketches) != len(per_episode):
        raise ValueError(f"got {len(sketches)} quantile sketches for {len(per_episode)} episodes; pass one each")
    keys = [k for k in per_episode[0] if all(k in ep for ep in per_episode)]
    out: Stats = {}
    for key in keys:
        parts = [ep[key] for ep in per_episode]
        counts = np.array([p["count"][0] for p in parts], dtype=np.float64)
        shapes = {np.asarray(p["mean"]).shape for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"feature {key!r} has stats of shapes {sorted(shapes)} in different episodes")
        shape = shapes.pop()
        w = (counts / counts.sum()).reshape((-1,) + (1,) * len(shape))
        stacked = {k: np.stack([np.asarray(p[k], dtype=np.float64) for p in parts]) for k in _STAT_NAMES}
        mean = (w * stacked["mean"]).sum(0)
        var = (w * (stacked["std"] ** 2 + (stacked["mean"] - mean) ** 2)).sum(0)
        agg: dict[str, list] = {
            "min": stacked["min"].min(0).tolist(),
            "max": stacked["max"].max(0).tolist(),
            "mean": mean.tolist(),
            "std": np.sqrt(np.maximum(var, 0.0)).tolist(),
            "count": [int(counts.sum())],
        }
        if all(all(k in p for k in QUANTILE_NAMES) for p in parts):
            found = [s.get(key) if s is not None else None for s in (sketches or [None] * len(parts))]
            if len(parts) == 1:  # one episode: its own (exact) quantiles
                agg.update({k: np.asarray(parts[0][k], dtype=np.float64).tolist() for k in QUANTILE_NAMES})
            elif all(f is not None for f in found):
                agg.update(_pooled_quantiles(found, shape))
            else:
                for k in QUANTILE_NAMES:
                    agg[k] = (w * np.stack([np.asarray(p[k], dtype=np.float64) for p in parts])).sum(0).tolist()
        out[key] = agg
    return out
