"""Several task datasets as one training set: CLIPort's multi-task protocol.

CLIPort (Shridhar et al., CoRL 2021, Sec. 4, "multi-task" rows of Table 1) trains one language-conditioned policy
on the demonstrations of many tasks at once; the instruction is what tells the tasks apart. Its protocol, kept here:

- the same number ``n`` of demonstrations of every task (:meth:`MultiTaskDataset.select_episodes`);
- balanced sampling: each training sample first draws a task uniformly, then a frame of that task
  (:meth:`MultiTaskDataset.sample_frames`; CLIPort's multi-task dataset draws a task, then an episode and a step),
  so a task with long episodes (stacking: 6 steps) does not crowd out one with short ones (1 step);
- one set of observation settings: every dataset must have the same heightmap shape, camera scale, renderer,
  cameras and split, since the network sees them all through the same input layer (mismatches are refused,
  naming both datasets).

Normalisation statistics (:meth:`MultiTaskDataset.stats`, :func:`pool_task_stats`) describe the input the network
trains on: the equal-weight mixture of the tasks' frame distributions, the distribution balanced sampling draws
from. Each task contributes its dataset's ``meta/stats.json`` (all its episodes, as single-task training uses), with
weight ``1/K`` whatever its frame count; mean and standard deviation are those of the mixture (exact), min and max
the extremes, ``count`` the total frames. Quantiles of a mixture cannot be recovered from the tasks' summaries and
are left out (the policies normalise with mean and std only).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlarm.data.info import OBSERVATION_SETTINGS
from vlarm.data.reader import frame_index
from vlarm.data.stats import Stats, aggregate_stats

logger = logging.getLogger(__name__)

#: Observation settings every task of a multi-task dataset shares (all but the task itself).
SHARED_SETTINGS = tuple(name for name in OBSERVATION_SETTINGS if name != "benchmark_task")
_MOMENTS = ("min", "max", "mean", "std")


def pool_task_stats(per_task: Sequence[Stats]) -> Stats:
    """Statistics of the equal-weight mixture of several tasks' frames (module docstring).

    For each feature every task has: ``mean = sum_k mean_k / K``, ``std**2 = sum_k (std_k**2 + (mean_k - mean)**2)
    / K`` (population variance of the mixture; :func:`vlarm.data.stats.aggregate_stats` with one unit weight per
    task), ``min`` / ``max`` over the tasks, ``count`` the sum of the tasks' frame counts.

    Args:
        per_task: one ``meta/stats.json``-style mapping per task (:mod:`vlarm.data.stats` layout: per feature
            lists ``min``, ``max``, ``mean``, ``std`` of one shape, ``count`` ``[frames]``).

    Returns:
        ``{feature: {"min", "max", "mean", "std", "count"}}`` as lists, shapes as in the input (e.g. ``(3, 1, 1)``
        for the colour image). No quantiles (see the module docstring). ``{}`` for no tasks.

    Raises:
        ValueError: a feature's stats have different shapes in different tasks.
    """
    units = [{key: {**{m: feat[m] for m in _MOMENTS}, "count": [1]} for key, feat in stats.items()
              if all(m in feat for m in _MOMENTS)} for stats in per_task]
    pooled = aggregate_stats(units)
    for key, feat in pooled.items():
        feat["count"] = [int(sum(int(stats[key].get("count", [0])[0]) for stats in per_task))]
    return pooled


def resolve_task_dirs(tasks: Sequence[str], data_dirs: Sequence[str | os.PathLike]) -> list[Path]:
    """The dataset root of each task: one directory per task (in the same order), or one root holding a
    sub-folder named after each task (``vlarm collect --out ROOT/<task>``).

    A directory given per task is used as is, or its ``<task>`` sub-folder when it has one (as single-task
    training does with ``--data``).

    Args:
        tasks: task names, one dataset each.
        data_dirs: ``len(tasks)`` directories, or one root.

    Returns:
        One ``Path`` per task.

    Raises:
        ValueError: another number of directories; one root lacking a task's sub-folder.
    """
    dirs = [Path(d) for d in data_dirs]
    if len(dirs) == 1 and len(tasks) > 1:
        root = dirs[0]
        missing = [t for t in tasks if not (root / t).is_dir()]
        if missing:
            raise ValueError(f"{root} has no sub-folder {', '.join(missing)}: pass one --data per task (in the order "
                             "of --task), or one root holding a dataset folder named after each task")
        return [root / t for t in tasks]
    if len(dirs) != len(tasks):
        raise ValueError(f"got {len(dirs)} dataset directories for {len(tasks)} tasks ({', '.join(tasks)}): pass "
                         "one --data per task, in the same order, or one root holding a folder per task")
    return [d / t if (d / t).is_dir() else d for d, t in zip(dirs, tasks, strict=True)]


def recorded_tasks(data_dirs: Sequence[str | os.PathLike]) -> tuple[list[str], list[Path]]:
    """The tasks a set of datasets holds, as their ``meta/info.json`` records them (``vlarm train --task multi``).

    Args:
        data_dirs: dataset roots (one per task); or a single directory that is not a dataset itself, whose
            sub-folders holding a ``meta/info.json`` are the datasets (sorted by name).

    Returns:
        ``(tasks, roots)``: each dataset's ``benchmark_task`` and its root, in the same order.

    Raises:
        ValueError: a single directory with no dataset sub-folder.
        vlarm.data.DatasetError: a root without a readable ``meta/info.json``.
    """
    from vlarm.data.info import INFO_PATH, DatasetInfo

    roots = [Path(d) for d in data_dirs]
    if len(roots) == 1 and not (roots[0] / INFO_PATH).is_file():
        found = sorted(p for p in roots[0].iterdir() if (p / INFO_PATH).is_file()) if roots[0].is_dir() else []
        if not found:
            raise ValueError(f"{roots[0]} is neither a dataset nor a folder of task datasets (no {INFO_PATH} in it or "
                             "its sub-folders): pass one --data per task")
        roots = found
    return [DatasetInfo.from_json(r / INFO_PATH).benchmark_task for r in roots], roots


class MultiTaskDataset:
    """Frames of several task datasets, indexed one after the other, with balanced sampling across tasks.

    Args:
        datasets: one per task, each with the ``EpisodeDataset`` interface (``len``, ``[i]``, ``num_episodes``,
            ``select_episodes``, ``stats``; ``dataset_info`` and ``root`` when read from disk).
        tasks: the task name of each dataset (what the user asked for); a dataset that records another
            ``benchmark_task`` in its ``meta/info.json`` is refused.

    Raises:
        ValueError: fewer than two datasets, a task count that differs from the dataset count, a task named
            twice, a dataset recording another task than asked, datasets whose observation settings
            (:data:`SHARED_SETTINGS`: split, heightmap shape, camera scale, renderer, cameras) differ (naming both
            datasets and both values), or a dataset without frames.

    Frame ``i`` is frame ``i - offset[k]`` of the dataset ``k`` it falls in (``task_offsets``), returned as that
    dataset returns it plus ``"task"``: the task name. Settings a dataset written by an older vlarm does not
    record (camera scale, renderer, cameras) cannot be compared: a warning is logged.
    """

    def __init__(self, datasets: Sequence[Any], tasks: Sequence[str]):
        self.datasets = list(datasets)
        self.benchmark_tasks = [str(t) for t in tasks]
        if len(self.datasets) != len(self.benchmark_tasks):
            raise ValueError(f"got {len(self.datasets)} datasets for {len(self.benchmark_tasks)} tasks; pass one "
                             "dataset per task")
        if len(self.datasets) < 2:
            raise ValueError(f"multi-task training needs at least two tasks, got {self.benchmark_tasks}; train a "
                             "single task with task=<name>")
        repeated = sorted({t for t in self.benchmark_tasks if self.benchmark_tasks.count(t) > 1})
        if repeated:
            raise ValueError(f"task {', '.join(repeated)} is named more than once; name each task once")
        for task, ds in zip(self.benchmark_tasks, self.datasets, strict=True):
            recorded = getattr(getattr(ds, "dataset_info", None), "benchmark_task", task)
            if recorded != task:
                raise ValueError(f"{_name(ds)} holds demonstrations of {recorded!r}, not {task!r}; pass --task "
                                 f"{recorded} for it or a dataset collected for {task}")
            if len(ds) == 0:
                raise ValueError(f"{_name(ds)} ({task}) has no frames to train on")
        self._check_settings()
        sizes = np.array([len(ds) for ds in self.datasets], dtype=np.int64)
        self.task_sizes = sizes
        self.task_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    @classmethod
    def open(cls, tasks: Sequence[str], data_dirs: Sequence[str | os.PathLike]) -> MultiTaskDataset:
        """Open an ``EpisodeDataset`` per task (directories as :func:`resolve_task_dirs` finds them).

        Raises:
            ValueError: see :func:`resolve_task_dirs` and the class.
            vlarm.data.DatasetError: a missing or damaged dataset.
        """
        from vlarm.data.reader import EpisodeDataset

        return cls([EpisodeDataset(d) for d in resolve_task_dirs(tasks, data_dirs)], tasks)

    def _check_settings(self) -> None:
        first = self.datasets[0]
        info0 = getattr(first, "dataset_info", None)
        if info0 is None:
            return
        ref = {k: v for k, v in info0.observation_settings().items() if k in SHARED_SETTINGS}
        unknown = set()
        for ds in self.datasets[1:]:
            info = ds.dataset_info
            mine = info.observation_settings()
            diffs = []
            for name, value, asked in info.observation_differences(ref):
                if value is None or asked is None:
                    unknown.add(name)
                elif name == "cameras" and ref.get("camera_scale") != mine.get("camera_scale"):
                    continue  # a scale change already explains every camera's new size
                else:
                    diffs.append(f"{name} {_describe(asked)} in {_name(first)} but {_describe(value)} in {_name(ds)}")
            if diffs:
                raise ValueError(f"the task datasets were recorded with other observation settings ({'; '.join(diffs)})"
                                 ": one policy needs one observation layout; collect them with the same --camera-scale"
                                 " and --renderer (and --split train)")
        if unknown:
            logger.warning("cannot check that the task datasets share %s: a dataset written by an older vlarm does "
                           "not record it", ", ".join(sorted(unknown)))

    # ------------------------------------------------------------------ the EpisodeDataset interface
    @property
    def split(self) -> str:
        """The split the datasets share (``"train"`` when they do not record one)."""
        info = getattr(self.datasets[0], "dataset_info", None)
        return getattr(info, "split", "train")

    @property
    def num_episodes(self) -> int:
        """Episodes over all tasks."""
        return int(sum(ds.num_episodes for ds in self.datasets))

    @property
    def episodes_per_task(self) -> int:
        """The fewest episodes any task has (the most ``select_episodes`` can take from every task)."""
        return int(min(ds.num_episodes for ds in self.datasets))

    @property
    def stats(self) -> Stats:
        """Pooled normalisation statistics: :func:`pool_task_stats` of the datasets' ``stats``."""
        return pool_task_stats([ds.stats for ds in self.datasets])

    def select_episodes(self, n: int) -> MultiTaskDataset:
        """A view with the first ``n`` episodes of every task (CLIPort: the same number of demos per task).

        Raises:
            ValueError: ``n`` is negative or more than a task has (the dataset's own message names it).
        """
        return type(self)([ds.select_episodes(int(n)) for ds in self.datasets], self.benchmark_tasks)

    def __len__(self) -> int:
        return int(self.task_sizes.sum())

    def task_index(self, i: int) -> int:
        """Index into :attr:`benchmark_tasks` of the task frame ``i`` (``0 <= i < len(self)``) belongs to."""
        if not 0 <= int(i) < len(self):
            raise IndexError(f"frame index {i} out of range for {len(self)} frames")
        return int(np.searchsorted(self.task_offsets, int(i), side="right") - 1)

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = frame_index(i, len(self))
        k = self.task_index(i)
        return {**self.datasets[k][i - int(self.task_offsets[k])], "task": self.benchmark_tasks[k]}

    def sample_frames(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Balanced sample of frame indices: each of the ``n`` draws picks a task uniformly, then one of its frames
        uniformly (CLIPort's multi-task sampling; see the module docstring).

        Args:
            rng: the training loop's generator (two draws per call: tasks, then frames).
            n: number of indices.

        Returns:
            ``(n,)`` int64 indices into this dataset.
        """
        tasks = rng.integers(0, len(self.datasets), size=n)
        return self.task_offsets[tasks] + rng.integers(0, self.task_sizes[tasks])

    def __repr__(self) -> str:
        parts = ", ".join(f"{t}: {ds.num_episodes} episodes" for t, ds in zip(self.benchmark_tasks, self.datasets,
                                                                                strict=True))
        return f"MultiTaskDataset({parts}; {len(self)} frames)"


def _name(ds: Any) -> str:
    return str(getattr(ds, "root", type(ds).__name__))


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
