"""``EpisodeDataset``: read a vlarm dataset (LeRobot v3.0 layout, see :mod:`vlarm.data.info`).

Opening validates the whole dataset cheaply (``info.json``, the meta tables, and every data file's
parquet footer), so a missing, truncated or inconsistent file is reported at once as a
:class:`DatasetError` instead of surfacing half-way through training. Frames are decoded lazily, one
episode file at a time, and cached (an episode of a few frames is ~1 MB decoded).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vlarm.data._io import decode_png
from vlarm.data.errors import DatasetError
from vlarm.data.info import EPISODES_PATH, INFO_PATH, STATS_PATH, TASKS_PATH, DatasetInfo
from vlarm.data.storage import (
    EPISODE_COLUMNS,
    decode_columns,
    read_episode_record,
    read_episode_table,
)

if TYPE_CHECKING:
    from vlarm.data.torch_dataset import TorchEpisodeDataset

_REBUILD = ("Rerun `vlarm collect` with the same --task, --split and --out (or open the root with "
            "EpisodeWriter(root, benchmark_task, split)) to rebuild the meta files.")


def frame_index(i: Any, n: int) -> int:
    """``i`` as a frame index into ``n`` frames, negative indices counting from the end (Python's rule).

    Raises:
        TypeError: ``i`` is not an integer (a bool is not a frame index); IndexError: outside ``[-n, n)``.
    """
    if isinstance(i, bool) or not isinstance(i, int | np.integer):
        raise TypeError(f"frame index must be an integer, got {type(i).__name__}")
    if not -n <= i < n:
        raise IndexError(f"frame index {i} out of range for {n} frames")
    return int(i) % n


class EpisodeDataset:
    """Frames of a vlarm dataset, indexable by global frame index.

    Args:
        root: dataset directory written by :class:`~vlarm.data.EpisodeWriter`.
        cache: keep decoded episodes in memory (default; ~0.4 MB per frame). With False only the
            most recently used episode is kept.

    Raises:
        DatasetError: ``root`` is missing, ``meta/info.json`` is missing or invalid, the meta files
            disagree with each other or with the data files (e.g. meta lags behind a killed writer),
            or a data file is missing or truncated. The message names the file and the fix.

    Attributes:
        root: the dataset directory.
        info: ``meta/info.json`` as a dict; ``dataset_info`` is the validated :class:`DatasetInfo`.
        episodes: ``meta/episodes`` as a DataFrame, one row per episode in this view (rows as on disk).
        episode_indices: original ``episode_index`` of each episode in this view.
        tasks: task strings (language instructions), indexed by ``task_index``.

    ``ds[i]`` returns frame ``i`` (0 <= i < len(ds), negative indices count from the end) as::

        {"colormap": uint8 (H, W, 3) RGB, "heightmap": float32 (H, W) metres above the table,
         "instruction": str, "pick_pose": float32 (7,), "place_pose": float32 (7,),
         "state": float32 (7,)  (poses: xyz metres + quaternion xyzw), "reward": float,
         "done": bool, "episode_index": int, "frame_index": int}

    Arrays are fresh copies, safe to modify.
    """

    def __init__(self, root: str | os.PathLike, *, cache: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset root does not exist (or is not a directory).")
        self.dataset_info = DatasetInfo.from_json(self.root / INFO_PATH)
        self.info: dict[str, Any] = self.dataset_info.to_dict()
        self.tasks: list[str] = self._read_tasks()
        self.episodes: pd.DataFrame = self._read_episodes()
        self._check_data_files()
        self._cache_all = bool(cache)
        self._cache: dict[int, dict[str, Any]] = {}
        self._set_lengths()

    # ------------------------------------------------------------------ validation on open
    def _read_tasks(self) -> list[str]:
        path = self.root / TASKS_PATH
        try:
            df = pd.read_parquet(path)
        except (OSError, pa.ArrowException, ValueError) as e:
            raise DatasetError(f"{path}: missing or unreadable ({e}). {_REBUILD}") from e
        if "task_index" not in df.columns:
            raise DatasetError(f"{path}: lacks the 'task_index' column. {_REBUILD}")
        n = self.dataset_info.total_tasks
        if len(df) != n or sorted(df["task_index"].tolist()) != list(range(n)):
            raise DatasetError(
                f"{path}: has task indices {sorted(df['task_index'].tolist())[:10]}, info.json says "
                f"{n} tasks. {_REBUILD}"
            )
        return [str(t) for t in df.sort_values("task_index").index]

    def _read_episodes(self) -> pd.DataFrame:
        path = self.root / EPISODES_PATH
        try:
            df = pd.read_parquet(path)
        except (OSError, pa.ArrowException, ValueError) as e:
            raise DatasetError(f"{path}: missing or unreadable ({e}). {_REBUILD}") from e
        missing = [c for c in EPISODE_COLUMNS if c not in df.columns]
        if missing:
            raise DatasetError(f"{path}: lacks columns {missing}. {_REBUILD}")
        info = self.dataset_info
        n = len(df)
        problems = []
        if n != info.total_episodes:
            problems.append(f"{n} episodes, info.json says {info.total_episodes}")
        elif n:
            lengths = df["length"].to_numpy()
            ends = np.cumsum(lengths)
            if not np.array_equal(df["episode_index"].to_numpy(), np.arange(n)):
                problems.append("episode_index is not 0..n-1 in order")
            if (lengths <= 0).any():
                problems.append("an episode has no frames")
            if not np.array_equal(df["dataset_to_index"].to_numpy(), ends) or not np.array_equal(
                df["dataset_from_index"].to_numpy(), ends - lengths
            ):
                problems.append("dataset_from_index/dataset_to_index are not contiguous")
            if int(ends[-1]) != info.total_frames:
                problems.append(f"{int(ends[-1])} frames, info.json says {info.total_frames}")
            if df["seed"].duplicated().any():
                problems.append(f"duplicate seeds {sorted(set(df['seed'][df['seed'].duplicated()]))}")
        elif info.total_frames:
            problems.append(f"no episodes, info.json says {info.total_frames} frames")
        if problems:
            raise DatasetError(f"{path}: inconsistent with {INFO_PATH} ({'; '.join(problems)}). {_REBUILD}")
        return df

    def _check_data_files(self) -> None:
        expected = set()
        for row in self.episodes.itertuples(index=False):
            e = int(row.episode_index)
            path = self.root / self.dataset_info.episode_data_path(e)
            expected.add(path.resolve())
            if not path.is_file():
                raise DatasetError(
                    f"{path}: data file of episode {e} is missing. Restore it, or delete the episode files "
                    f"after it and rerun `vlarm collect` into the same --out to rebuild the meta files."
                )
            record, n_rows = read_episode_record(path)
            if n_rows != row.length or record.get("seed") != row.seed or record.get("episode_index") != e:
                raise DatasetError(
                    f"{path}: holds episode {record.get('episode_index')} (seed {record.get('seed')}, "
                    f"{n_rows} frames) but {EPISODES_PATH} lists episode {e} (seed {row.seed}, "
                    f"{row.length} frames). {_REBUILD}"
                )
        data_dir = self.root / "data"
        on_disk = data_dir.rglob("*.parquet") if data_dir.is_dir() else []
        extra = [p for p in on_disk if p.resolve() not in expected]
        if extra:
            raise DatasetError(
                f"{sorted(extra)[0]}: data file not listed in {EPISODES_PATH} ({len(extra)} such files): the "
                "meta lags behind the data because collection is still running or was killed. Wait for "
                f"the running EpisodeWriter to close, or {_REBUILD[0].lower()}{_REBUILD[1:]}"
            )

    def _set_lengths(self) -> None:
        lengths = self.episodes["length"].to_numpy(dtype=np.int64)
        self._episode_ids = self.episodes["episode_index"].to_numpy(dtype=np.int64)
        self._ends = np.cumsum(lengths)
        self._starts = self._ends - lengths

    # ------------------------------------------------------------------ views and properties
    @property
    def num_episodes(self) -> int:
        """Number of episodes in this view."""
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        """Number of frames in this view (= ``len(self)``)."""
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def fps(self) -> int:
        """Frames per second (1: one pick-and-place step per frame)."""
        return self.dataset_info.fps

    @property
    def seeds(self) -> list[int]:
        """Environment seeds of the episodes in this view, in episode order."""
        return [int(s) for s in self.episodes["seed"]]

    @property
    def stats(self) -> dict[str, dict[str, list]]:
        """``meta/stats.json`` of the whole dataset (see :mod:`vlarm.data.stats` for the layout).

        Raises:
            DatasetError: the file is missing or unreadable.
        """
        path = self.root / STATS_PATH
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DatasetError(f"{path}: missing or unreadable ({e}). {_REBUILD}") from e

    @property
    def episode_indices(self) -> list[int]:
        """Original ``episode_index`` (on disk) of each episode in this view, in view order."""
        return [int(e) for e in self._episode_ids]

    def select_episodes(self, episodes: int | Iterable[int]) -> EpisodeDataset:
        """Return a view of some episodes (e.g. to train on 1, 10, 100 demos, or on a chosen subset).

        As LeRobot's ``LeRobotDataset(repo_id, episodes=[...])``, the view holds only the chosen episodes;
        frames keep their original ``episode_index`` and their ``frame_index`` within the episode, while
        ``ds[i]`` / ``len(ds)`` / :attr:`seeds` / :meth:`episode_frames` / :meth:`to_torch` count over the
        view (frame 0 is the first frame of its first episode). The view shares the decoded-episode cache
        with this dataset; :attr:`stats` and :attr:`info` still describe the whole dataset, and the rows of
        :attr:`episodes` are kept as in ``meta/episodes`` (``dataset_from_index`` etc. index the whole dataset).

        Args:
            episodes: an ``int`` ``n``: the first ``n`` episodes of this view; or any iterable of integers
                (list, tuple, ``range``, 1-D array): the original episode indices to keep, in the order given
                (``[3, 0, 7]`` yields episode 3's frames first). Indices must be episodes of this view.

        Returns:
            A new :class:`EpisodeDataset` view; this one is unchanged.

        Raises:
            ValueError: ``n`` is negative or larger than the number of episodes (the message says how many
                exist); an index is not an integer, is negative, is repeated, or names an episode that is
                not in this view (the message gives the valid range).
        """
        if isinstance(episodes, int | np.integer) and not isinstance(episodes, bool):
            n = int(episodes)
            if n < 0:
                raise ValueError(f"n must be a non-negative integer, got {n!r}")
            if n > self.num_episodes:
                raise ValueError(
                    f"asked for {n} episodes but {self.root} has only {self.num_episodes} "
                    f"({self.dataset_info.benchmark_task}, {self.dataset_info.split}); "
                    "collect more or ask for fewer"
                )
            positions = list(range(n))
        else:
            positions = self._positions_of(episodes)
        view = object.__new__(EpisodeDataset)
        view.__dict__.update(self.__dict__)
        view.episodes = self.episodes.iloc[positions].reset_index(drop=True)
        view._set_lengths()
        return view

    def _positions_of(self, episodes: Any) -> list[int]:
        """Positions in this view of the original episode indices ``episodes`` (see :meth:`select_episodes`)."""
        valid = self._valid_range()
        if isinstance(episodes, bool | float | str | bytes) or not isinstance(episodes, Iterable):
            raise ValueError(
                f"episodes must be a count (int) or a list of episode indices in {valid}, got {episodes!r}"
            )
        items = list(np.asarray(episodes).reshape(-1)) if isinstance(episodes, np.ndarray) else list(episodes)
        where = {int(e): i for i, e in enumerate(self._episode_ids)}
        positions, seen = [], set()
        for e in items:
            if isinstance(e, bool) or not isinstance(e, int | np.integer):
                raise ValueError(f"episode indices must be integers in {valid}, got {e!r}")
            e = int(e)
            if e < 0 or e not in where:
                raise ValueError(f"episode index {e} does not exist: valid episode indices are {valid}")
            if e in seen:
                raise ValueError(f"episode index {e} is repeated; pass each episode once (valid: {valid})")
            seen.add(e)
            positions.append(where[e])
        return positions

    def _valid_range(self) -> str:
        ids = sorted(int(e) for e in self._episode_ids)
        where = f"{self.root} ({self.dataset_info.benchmark_task}, {self.dataset_info.split})"
        if not ids:
            return f"none ({where} has no episodes in this view)"
        if ids == list(range(ids[0], ids[0] + len(ids))):
            return f"{ids[0]}..{ids[-1]} ({len(ids)} episodes of {where})"
        shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
        return f"[{shown}] (the {len(ids)} episodes of this view of {where})"

    # ------------------------------------------------------------------ frame access
    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = frame_index(i, len(self))
        ep = int(np.searchsorted(self._ends, i, side="right"))
        return self._frame(self._episode(ep), i - int(self._starts[ep]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for ep in range(self.num_episodes):
            yield from self.episode_frames(ep)

    def episode_frames(self, ep: int) -> list[dict[str, Any]]:
        """All frames of the ``ep``-th episode of this view (0 <= ep < num_episodes), as dicts like ``ds[i]``.

        In a :meth:`select_episodes` view ``ep`` counts over the view; the frames carry the original
        ``episode_index`` (= ``self.episode_indices[ep]``).

        Raises:
            IndexError: ``ep`` out of range.
            DatasetError: the episode's data file cannot be read.
        """
        if not 0 <= ep < self.num_episodes:
            raise IndexError(f"episode {ep} out of range for {self.num_episodes} episodes")
        data = self._episode(int(ep))
        return [self._frame(data, t) for t in range(len(data["task_index"]))]

    def load(self) -> EpisodeDataset:
        """Read and decode every frame of this view now, verifying every page checksum and PNG.

        Returns:
            ``self``; with ``cache=True`` all frames are then served from memory.

        Raises:
            DatasetError: a data file is corrupt.
        """
        for ep in range(self.num_episodes):
            data = self._episode(ep)
            for t in range(len(data["png"])):
                self._colormap(data, t)
        return self

    def to_torch(self) -> TorchEpisodeDataset:
        """Wrap as a ``torch.utils.data.Dataset`` whose items hold tensors.

        See :class:`vlarm.data.torch_dataset.TorchEpisodeDataset`; torch is imported only here.
        """
        from vlarm.data.torch_dataset import TorchEpisodeDataset

        return TorchEpisodeDataset(self)

    def _episode(self, pos: int) -> dict[str, Any]:
        # ``pos`` counts over this view; files and the (shared) cache are keyed by the original index.
        ep = int(self._episode_ids[pos])
        if ep in self._cache:
            return self._cache[ep]
        path = self.root / self.dataset_info.episode_data_path(ep)
        table = read_episode_table(path)
        try:
            data = decode_columns(table, self.dataset_info.image_shape)
        except (ValueError, pa.ArrowException) as e:
            raise DatasetError(
                f"{path}: cannot decode episode {ep} ({e!r}). Delete it and every later episode file, "
                "then rerun collection."
            ) from e
        # Colour maps are decoded from PNG on first access to each frame.
        data["colormap"] = [None] * len(data["png"])
        data["path"] = path
        if not self._cache_all:
            self._cache.clear()
        self._cache[ep] = data
        return data

    def _colormap(self, data: dict[str, Any], t: int) -> np.ndarray:
        image = data["colormap"][t]
        if image is None:
            try:
                image = decode_png(data["png"][t])
            except (ValueError, OSError) as e:
                raise DatasetError(
                    f"{data['path']}: frame {t} holds an undecodable PNG ({e!r}). Delete the file and every "
                    "later episode file, then rerun collection."
                ) from e
            want = (*self.dataset_info.image_shape, 3)
            if image.shape != want:
                raise DatasetError(
                    f"{data['path']}: frame {t} colour map is {image.shape}, info.json declares {want}."
                )
            data["colormap"][t] = image
        return image

    def _frame(self, data: dict[str, Any], t: int) -> dict[str, Any]:
        action = data["action"][t]
        return {
            "colormap": self._colormap(data, t).copy(),
            "heightmap": data["heightmap"][t].copy(),
            "instruction": self.tasks[int(data["task_index"][t])],
            "pick_pose": action[:7].copy(),
            "place_pose": action[7:].copy(),
            "state": data["state"][t].copy(),
            "reward": float(data["reward"][t]),
            "done": bool(data["done"][t]),
            "episode_index": int(data["episode_index"][t]),
            "frame_index": int(data["frame_index"][t]),
        }

    def __repr__(self) -> str:
        return (
            f"EpisodeDataset({str(self.root)!r}, task={self.dataset_info.benchmark_task!r}, "
            f"split={self.dataset_info.split!r}, episodes={self.num_episodes}, frames={len(self)})"
        )
