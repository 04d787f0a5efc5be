"""Performance by group with fairlearn's ``MetricFrame``, disparities with bootstrap intervals.

Groups are whatever a sample can be labelled with: colour, object kind, instruction phrasing, table region. The
disparity of a metric is fairlearn's ``MetricFrame.difference()`` (largest minus smallest group value; Bird et
al. 2020, fairlearn user guide "Assessment"), reported with a 95% percentile-bootstrap interval over samples
(resampled within each group, so every group keeps its size) and the worst group. The mitigation lives in
:func:`vlarm.trust.training.inverse_frequency_weights` (re-weighting, Kamiran & Calders 2012, Sec. 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vlarm.stats import wilson_interval


def _accuracy(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else float("nan")


@dataclass
class GroupReport:
    """Accuracy by group and the disparity between groups.

    Attributes:
        feature: name of the sensitive feature (e.g. ``"colour"``).
        by_group: group -> ``{"n", "accuracy", "ci": [low, high]}`` (percent, Wilson interval).
        overall: accuracy over all samples (percent).
        difference: largest minus smallest group accuracy (percentage points, fairlearn ``difference()``).
        difference_ci: its 95% bootstrap interval.
        worst_group: the group with the lowest accuracy.
    """

    feature: str
    by_group: dict = field(default_factory=dict)
    overall: float = float("nan")
    difference: float = float("nan")
    difference_ci: tuple[float, float] = (float("nan"), float("nan"))
    worst_group: str = ""


def group_report(y_true: Sequence, y_pred: Sequence, groups: Sequence, feature: str = "group",
                 resamples: int = 1000, seed: int = 0) -> GroupReport:
    """Accuracy per group with fairlearn ``MetricFrame`` and the between-group difference with its interval.

    Args:
        y_true: ``(N,)`` true labels (or 1 for a success, for episode outcomes with ``y_pred`` all 1).
        y_pred: ``(N,)`` predictions.
        groups: ``(N,)`` group of each sample.
        feature: name of the grouping, for reports.
        resamples: bootstrap resamples of the difference.
        seed: bootstrap seed.

    Returns:
        A :class:`GroupReport`.

    Raises:
        ValueError: mismatched lengths or no samples.
    """
    from fairlearn.metrics import MetricFrame

    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups).astype(str)
    if not (len(y_true) == len(y_pred) == len(groups)) or len(y_true) == 0:
        raise ValueError(f"need equal, non-zero lengths; got {len(y_true)}, {len(y_pred)}, {len(groups)}")
    frame = MetricFrame(metrics=_accuracy, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    correct = y_true == y_pred
    by_group = {}
    for g, acc in frame.by_group.items():
        mask = groups == g
        n, k = int(mask.sum()), int(correct[mask].sum())
        by_group[str(g)] = {"n": n, "accuracy": 100 * float(acc), "ci": list(wilson_interval(k, n))}
    rng = np.random.default_rng(seed)
    index = {g: np.flatnonzero(groups == g) for g in by_group}
    diffs = []
    for _ in range(resamples):
        accs = [correct[rng.choice(ix, len(ix))].mean() for ix in index.values()]
        diffs.append(100 * (max(accs) - min(accs)))
    lo, hi = np.percentile(diffs, [2.5, 97.5]) if diffs else (float("nan"), float("nan"))
    worst = min(by_group, key=lambda g: by_group[g]["accuracy"])
    return GroupReport(feature, by_group, 100 * float(frame.overall), 100 * float(frame.difference()),
                       (float(lo), float(hi)), worst)


def report_rows(report: GroupReport) -> list[dict]:
    """One row per group (``group``, ``n``, ``accuracy``, ``ci``), worst first, for tables."""
    rows = [{"group": g, **v} for g, v in report.by_group.items()]
    return sorted(rows, key=lambda r: r["accuracy"])


__all__ = ["GroupReport", "group_report", "report_rows"]
