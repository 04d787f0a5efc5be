"""Scores with 95% intervals (issue 7 item 1)."""

import numpy as np
import pytest

from vlarm.stats import format_ci, intervals_overlap, score_interval, score_summary, wilson_interval


def test_wilson_matches_the_closed_form():
    k, n, z = 25, 100, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(100 * (centre - half), abs=1e-6) and hi == pytest.approx(100 * (centre + half), abs=1e-6)


def test_wilson_stays_inside_0_100_at_the_ends():
    lo, hi = wilson_interval(0, 20)
    assert lo == pytest.approx(0.0, abs=1e-9) and 0 < hi < 25
    lo, hi = wilson_interval(20, 20)
    assert 75 < lo < 100 and hi == pytest.approx(100.0)


def test_25_vs_21_percent_at_100_episodes_is_not_demonstrated():
    assert intervals_overlap(wilson_interval(25, 100), wilson_interval(21, 100))
    assert not intervals_overlap(wilson_interval(90, 100), wilson_interval(50, 100))


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_episodes():
    rng = np.random.default_rng(0)
    small = rng.choice([0.0, 0.5, 1.0], size=30)
    large = rng.choice([0.0, 0.5, 1.0], size=600)
    lo, hi = score_interval(small)
    assert lo < 100 * small.mean() < hi
    assert score_interval(small) == score_interval(small)          # seeded: reproducible
    lo2, hi2 = score_interval(large)
    assert hi2 - lo2 < hi - lo
    assert score_interval([1.0] * 7) == (100.0, 100.0)              # no variation to resample


def test_summary_and_errors():
    s = score_summary([1.0, 0.5, 0.0, 1.0], [True, False, False, True])
    assert s["episodes"] == 4 and s["score"] == pytest.approx(62.5) and s["success_rate"] == 50.0
    assert s["score_ci"][0] <= 62.5 <= s["score_ci"][1] and s["success_ci"][0] < 50 < s["success_ci"][1]
    assert score_summary([], [])["score"] is None
    with pytest.raises(ValueError, match="rewards but"):
        score_summary([1.0], [True, False])
    with pytest.raises(ValueError, match="at least one episode"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match=r"successes must be in \[0, 3\]"):
        wilson_interval(4, 3)
    assert format_ci(72.71, [64.0, 80.96]) == "72.7 [64.0, 81.0]" and format_ci(None, None) == "-"


def test_mean_interval_is_the_score_interval_without_the_scale():
    from vlarm.stats import mean_interval, score_interval

    values = [0.1, 0.4, 0.35, 0.8, 0.55]
    low, high = mean_interval(values)
    assert low < np.mean(values) < high
    assert score_interval(values) == pytest.approx((100 * low, 100 * high))
    assert mean_interval([-1.5, -1.5]) == (-1.5, -1.5)           # any units, signs (paired differences)
    with pytest.raises(ValueError, match="values must be finite"):
        mean_interval([1.0, float("nan")])
