"""Scores with their uncertainty: the CLIPort score and success rate, each with a 95% interval.

CLIPort (Shridhar et al. CoRL 2021, Sec. 4.2) reports the score (mean total reward x 100, partial credit counts)
and we add the success rate (share of episodes with total reward above 0.99). Both come with a 95% confidence
interval and the episode count, so a reader can tell a difference from noise:

* score: percentile bootstrap over episodes (``scipy.stats.bootstrap``, 10,000 resamples, fixed seed);
* success rate: the Wilson score interval (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``), which
  stays inside [0, 100] and is sensible at 0 or n successes, unlike the normal approximation.

Two results differ demonstrably only when their intervals do not overlap (:func:`intervals_overlap`); at 100
episodes, 25% vs 21% success does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

#: Confidence level of every interval vlarm reports.
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000


def score_interval(total_rewards: Sequence[float], level: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the CLIPort score (mean total reward x 100) over episodes.

    Args:
        total_rewards: per-episode total reward in [0, 1], at least one episode.
        level: confidence level in (0, 1).
        seed: seed of the resampling (the same rewards give the same interval).

    Returns:
        ``(low, high)`` in score units (0-100). When every episode has the same reward the interval is that
        point (resampling cannot vary it).

    Raises:
        ValueError: no episodes, a non-finite reward, or ``level`` outside (0, 1).
    """
    low, high = mean_interval(total_rewards, level, seed)
    return 100 * low, 100 * high


def mean_interval(values: Sequence[float], level: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of per-episode values (e.g. a held-out loss per episode, or paired
    per-episode differences between two models on the same episodes), resampling episodes.

    Args:
        values: one finite value per episode, at least one.
        level: confidence level in (0, 1).
        seed: seed of the resampling (the same values give the same interval).

    Returns:
        ``(low, high)`` in the values' units; the point itself when every value is equal.

    Raises:
        ValueError: no values, a non-finite value, or ``level`` outside (0, 1).
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    _check(len(x), level)
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=BOOTSTRAP_RESAMPLES,
                          method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilson_interval(successes: int, episodes: int, level: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a success rate, in percent.

    Args:
        successes: number of successful episodes, ``0 <= successes <= episodes``.
        episodes: number of episodes, >= 1.
        level: confidence level in (0, 1).

    Returns:
        ``(low, high)`` in percent (0-100).

    Raises:
        ValueError: counts out of range or ``level`` outside (0, 1).
    """
    _check(episodes, level)
    if not 0 <= successes <= episodes:
        raise ValueError(f"successes must be in [0, {episodes}], got {successes}")
    ci = stats.binomtest(int(successes), int(episodes)).proportion_ci(confidence_level=level, method="wilson")
    return float(100 * ci.low), float(100 * ci.high)


def score_summary(total_rewards: Sequence[float], successes: Sequence[bool], seed: int = 0) -> dict:
    """Score and success rate of a set of episodes, each with its 95% interval, and the episode count.

    Args:
        total_rewards: per-episode total reward in [0, 1].
        successes: per-episode success flags (same length).
        seed: bootstrap seed.

    Returns:
        ``{"episodes", "score", "score_ci": [low, high], "success_rate", "success_ci": [low, high]}`` (score and
        success in 0-100); with no episodes, ``{"episodes": 0}`` and ``None`` for the rest.

    Raises:
        ValueError: the two sequences differ in length.
    """
    rewards = np.asarray(total_rewards, dtype=np.float64).reshape(-1)
    ok = np.asarray(successes, dtype=bool).reshape(-1)
    if len(rewards) != len(ok):
        raise ValueError(f"{len(rewards)} rewards but {len(ok)} success flags")
    n = len(rewards)
    if n == 0:
        return {"episodes": 0, "score": None, "score_ci": None, "success_rate": None, "success_ci": None}
    return {
        "episodes": n,
        "score": float(100 * rewards.mean()),
        "score_ci": list(score_interval(rewards, seed=seed)),
        "success_rate": float(100 * ok.mean()),
        "success_ci": list(wilson_interval(int(ok.sum()), n)),
    }


def intervals_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when two ``(low, high)`` intervals share a point: the difference is then not demonstrated."""
    return bool(a[0] <= b[1] and b[0] <= a[1])


def format_ci(value: float | None, ci: Sequence[float] | None) -> str:
    """``"72.7 [64.1, 80.9]"`` (one decimal), or ``"-"`` without a value."""
    if value is None:
        return "-"
    return f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci is not None else f"{value:.1f}"


def _check(n: int, level: float) -> None:
    if n < 1:
        raise ValueError("an interval needs at least one episode")
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
