import numpy as np
import pytest

from vlarm.trust.fairness import group_report, report_rows


def test_group_accuracies_and_difference_by_hand():
    y_true = [0, 1, 0, 1, 0, 1, 0, 1]
    y_pred = [0, 1, 0, 1, 0, 0, 1, 1]      # group a all right, group b half right
    groups = ["a"] * 4 + ["b"] * 4
    r = group_report(y_true, y_pred, groups, "colour")
    assert r.by_group["a"]["accuracy"] == 100.0 and r.by_group["b"]["accuracy"] == 50.0
    assert r.overall == 75.0 and r.difference == 50.0 and r.worst_group == "b"
    assert r.difference_ci[0] <= 50.0 <= r.difference_ci[1]
    assert r.by_group["b"]["n"] == 4 and r.by_group["b"]["ci"][0] < 50 < r.by_group["b"]["ci"][1]
    assert [row["group"] for row in report_rows(r)] == ["b", "a"]


def test_equal_groups_have_zero_difference():
    r = group_report(np.ones(6), np.ones(6), ["x", "y"] * 3)
    assert r.difference == 0.0 and r.difference_ci == (0.0, 0.0)


def test_mismatched_lengths_refused():
    with pytest.raises(ValueError, match="equal"):
        group_report([1, 0], [1], ["a", "b"])
