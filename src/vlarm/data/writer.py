"""``EpisodeWriter``: append pick-and-place episodes to a LeRobot v3.0-style dataset, crash-safe.

Collection may be killed at any instant (SIGKILL) and rerun. The rules that make that safe:

- The data files are the source of truth. Each episode is one parquet file, written to a temporary file
  and moved into place with ``os.replace``: it either exists complete or not at all. Its footer records
  the seed, task strings, total reward and stats.
- Opening a writer removes stray temporary files, re-reads every data file's footer and rewrites all
  meta files from them, so meta that lagged behind a kill is repaired before anything else happens.
- Completed seeds come from the data files, so a rerun skips exactly the seeds already on disk; a
  seed can never be written twice (``add_episode`` refuses it).
- Rejected seeds (demos with reward <= 0.99) are kept in ``meta/rejected_seeds.json``, also rewritten
  atomically. A kill between a rejection and its record only means the seed is tried again.
- A lock file (``.writer.lock``, ``flock``) keeps two writers off the same root; the kernel drops the
  lock when the process dies. A writer removes the file when it releases the root (close, or a failed
  open), so a finished dataset holds no lock file; a writer that locked a file another writer had just
  removed notices (the path no longer names the file it locked) and locks the new file instead.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlarm.data._io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    remove_stray_temp_files,
)
from vlarm.data.errors import DatasetError
from vlarm.data.info import (
    DATA_PATH,
    DEFAULT_CHUNKS_SIZE,
    DEFAULT_IMAGE_SHAPE,
    EPISODES_PATH,
    INFO_PATH,
    OPTIONAL_OBSERVATION_FIELDS,
    REJECTED_PATH,
    SPLITS,
    STATS_PATH,
    TASKS_PATH,
    DatasetInfo,
    check_observation_settings,
    vlarm_features,
)
from vlarm.data.stats import aggregate_stats
from vlarm.data.storage import (
    PARQUET_OPTIONS,
    episode_table,
    episodes_table,
    read_episode_record,
    tasks_frame,
    validate_frames,
)

LOCK_NAME = ".writer.lock"
_DATA_FILE = re.compile(r"^data/chunk-(\d+)/file-(\d+)\.parquet$")


class EpisodeWriter:
    """Create or resume a vlarm dataset (LeRobot v3.0 layout, see :mod:`vlarm.data.info`) at ``root``.

    Args:
        root: dataset directory; created if missing. One root holds one ``benchmark_task`` and one
            ``split``.
        benchmark_task: task variant, e.g. "put-block-in-bowl-seen-colors".
        split: "train", "val" or "test".
        fps: frames per second written to ``info.json``; one pick-and-place step per frame, so 1.
        image_shape: ``(H, W)`` of colour maps and heightmaps in pixels (CLIPort: 320 x 160).
        chunks_size: data files per ``data/chunk-XXX`` directory (LeRobot's default 1000).
        robot_type: free text for ``info.json``.
        meta_interval_s: during collection the meta files are rewritten after an episode only when
            this many seconds have passed since the last rewrite (0: after every episode); rewriting
            grows with the number of episodes (~0.1-0.2 s at 1000). :meth:`close` always rewrites them,
            and a writer reopened after a kill rebuilds them from the data files.
        observation: the observation settings of the run (``vlarm.data.collect.observation_settings``:
            camera scale, renderer, cameras, ...). When given, they are recorded in every ``info.json`` from the
            first one on, and a root holding episodes recorded with other (or unknown) settings is refused
            (:func:`vlarm.data.info.check_observation_settings`), so a dataset never mixes observation kinds.

    Raises:
        ValueError: bad arguments.
        DatasetError: ``root`` holds a dataset with a different task, split, fps, image shape or observation
            settings; a data
            file is corrupt or episodes are missing in the middle; another writer holds ``root``.

    Use it as a context manager or call :meth:`close`: until then ``meta/`` may lag behind ``data/``
    (by at most ``meta_interval_s``), and :class:`~vlarm.data.EpisodeDataset` refuses a lagging root.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        benchmark_task: str,
        split: str,
        fps: int = 1,
        *,
        image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE,
        chunks_size: int = DEFAULT_CHUNKS_SIZE,
        robot_type: str | None = None,
        meta_interval_s: float = 5.0,
        observation: Mapping[str, Any] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not isinstance(benchmark_task, str) or not benchmark_task:
            raise ValueError(f"benchmark_task must be a non-empty string, got {benchmark_task!r}")
        if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if int(chunks_size) <= 0 or len(image_shape) != 2 or min(image_shape) <= 0:
            raise ValueError(f"need chunks_size > 0 and a positive (H, W), got {chunks_size}, {image_shape}")
        self.root = Path(root)
        self.benchmark_task = benchmark_task
        self.split = split
        self.fps = fps
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.chunks_size = int(chunks_size)
        self.robot_type = robot_type
        self.meta_interval_s = float(meta_interval_s)
        self.observation = dict(observation) if observation is not None else None
        self._last_meta_write = -float("inf")
        self._closed = True
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._acquire_lock()
        self._closed = False
        try:
            self._check_existing_info()
            remove_stray_temp_files(self.root)
            self._records = self._scan_data_files()
            self._tasks = self._tasks_from_records(self._records)
            self._rejected = self._read_rejected()
            self._rejected -= self.completed_seeds()
            self._write_meta()
        except BaseException:
            self._release_lock()
            self._closed = True
            raise

    # ------------------------------------------------------------------ public API
    @property
    def num_episodes(self) -> int:
        """Number of episodes fully written."""
        return len(self._records)

    @property
    def num_frames(self) -> int:
        """Number of frames fully written."""
        return sum(int(r["length"]) for r in self._records)

    def completed_seeds(self) -> set[int]:
        """Seeds of the episodes fully written (read from the data files, so it survives a kill)."""
        return {int(r["seed"]) for r in self._records}

    def rejected_seeds(self) -> set[int]:
        """Seeds recorded with :meth:`reject` (and not written since)."""
        return set(self._rejected)

    def add_episode(self, frames: Sequence[dict[str, Any]], seed: int, total_reward: float) -> int:
        """Append one episode atomically and bring the meta files up to date.

        Args:
            frames: one dict per pick-and-place step with ``colormap`` uint8 (H, W, 3) RGB, ``heightmap``
                float (H, W) metres (stored as float32, exactly), ``state`` / ``pick_pose`` /
                ``place_pose`` float (7,) = xyz metres + quaternion xyzw, ``reward`` float, ``done``
                bool, ``instruction`` str (the step's language goal, stored in ``meta/tasks.parquet``).
            seed: the environment seed that produced the episode; must not be written already.
            total_reward: the episode's total reward (sum of step rewards, 0..1).

        Returns:
            The new episode's ``episode_index``.

        Raises:
            ValueError: malformed frames, a non-finite ``total_reward``, or ``seed`` already written.
            RuntimeError: the writer is closed.
        """
        self._check_open()
        seed = _as_int(seed, "seed")
        total_reward = float(total_reward)
        if total_reward != total_reward or total_reward in (float("inf"), float("-inf")):
            raise ValueError(f"total_reward must be finite, got {total_reward}")
        for r in self._records:
            if int(r["seed"]) == seed:
                raise ValueError(
                    f"seed {seed} is already written as episode {r['episode_index']} in {self.root}"
                )
        arrays = validate_frames(frames, self.image_shape)
        tasks = dict(self._tasks)
        task_indices = [tasks.setdefault(s, len(tasks)) for s in arrays["instruction"]]
        episode_index = len(self._records)
        record = {
            "episode_index": episode_index,
            "seed": seed,
            "benchmark_task": self.benchmark_task,
            "split": self.split,
            "fps": self.fps,
            "total_reward": total_reward,
            "length": len(task_indices),
            "dataset_from_index": self.num_frames,
            "tasks": list(dict.fromkeys(arrays["instruction"])),
            "task_indices": {s: tasks[s] for s in dict.fromkeys(arrays["instruction"])},
        }
        table, record = episode_table(
            arrays,
            episode_index=episode_index,
            index_from=record["dataset_from_index"],
            task_indices=task_indices,
            fps=self.fps,
            record=record,
        )
        atomic_write_parquet(self._data_path(episode_index), table, **PARQUET_OPTIONS)
        # The episode is committed; everything below only mirrors it into meta.
        self._records.append(record)
        self._tasks = tasks
        if seed in self._rejected:
            self._rejected.discard(seed)
            self._write_rejected()
        if time.monotonic() - self._last_meta_write >= self.meta_interval_s:
            self._write_meta()
        return episode_index

    def reject(self, seed: int) -> None:
        """Record that ``seed`` was tried and rejected (e.g. total reward <= 0.99), atomically.

        Raises:
            ValueError: ``seed`` is already written as an episode.
            RuntimeError: the writer is closed.
        """
        self._check_open()
        seed = _as_int(seed, "seed")
        if seed in self.completed_seeds():
            raise ValueError(f"seed {seed} is already written as an episode in {self.root}; cannot reject it")
        if seed not in self._rejected:
            self._rejected.add(seed)
            self._write_rejected()

    def flush(self) -> None:
        """Rewrite the meta files now (info, tasks, episodes, stats) so readers see every episode."""
        self._check_open()
        self._write_meta()

    def close(self) -> None:
        """Finalise the meta files (info, tasks, episodes, stats) and release the root; idempotent."""
        if self._closed:
            return
        try:
            self._write_meta()
        finally:
            self._release_lock()
            self._closed = True

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Release the lock of a writer dropped without close(); meta is already consistent.
        if getattr(self, "_closed", True) is False:
            self._release_lock()

    def __repr__(self) -> str:
        return (
            f"EpisodeWriter({str(self.root)!r}, benchmark_task={self.benchmark_task!r}, "
            f"split={self.split!r}, episodes={self.num_episodes}, rejected={len(self._rejected)})"
        )

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"EpisodeWriter for {self.root} is closed; open a new one to resume")

    def _acquire_lock(self) -> int:
        path = self.root / LOCK_NAME
        for _ in range(100):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DatasetError(
                    f"{path}: another EpisodeWriter (this or another process) has {self.root} "
                    "open. Close it first, or collect into a different root."
                ) from None
            # The previous holder removes the file before unlocking it: if that happened between our open
            # and our flock, we hold a lock on a removed file, which would not keep a third writer out.
            try:
                ours, now = os.fstat(fd), os.stat(path)
                if (ours.st_dev, ours.st_ino) == (now.st_dev, now.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        raise DatasetError(
            f"{path}: the lock file keeps being replaced while we try to lock it; make sure only one "
            "process collects into this root, then retry."
        )

    def _release_lock(self) -> None:
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            try:
                # Remove the file while still holding the lock (see _acquire_lock for why that is safe).
                try:
                    os.unlink(self.root / LOCK_NAME)
                except OSError:
                    pass
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _info(self) -> DatasetInfo:
        n = len(self._records)
        recorded = {name: self.observation[name] for name in OPTIONAL_OBSERVATION_FIELDS} if self.observation else {}
        return DatasetInfo(**recorded,
            fps=self.fps,
            features=vlarm_features(self.image_shape),
            benchmark_task=self.benchmark_task,
            split=self.split,
            total_episodes=n,
            total_frames=self.num_frames,
            total_tasks=len(self._tasks),
            chunks_size=self.chunks_size,
            splits={self.split: f"0:{n}"},
            robot_type=self.robot_type,
        )

    def _check_existing_info(self) -> None:
        if self.observation is not None:
            check_observation_settings(self.root, self.observation)
        path = self.root / INFO_PATH
        if not path.is_file():
            return
        try:
            old = DatasetInfo.from_json(path)
        except DatasetError:
            return  # unreadable meta is rebuilt from the data files below
        ours = {
            "benchmark_task": self.benchmark_task,
            "split": self.split,
            "fps": self.fps,
            "image_shape": self.image_shape,
            "chunks_size": self.chunks_size,
        }
        theirs = {
            "benchmark_task": old.benchmark_task,
            "split": old.split,
            "fps": old.fps,
            "image_shape": old.image_shape,
            "chunks_size": old.chunks_size,
        }
        diff = {k: (theirs[k], ours[k]) for k in ours if theirs[k] != ours[k]}
        if diff:
            what = ", ".join(f"{k}: dataset has {a!r}, writer asked for {b!r}" for k, (a, b) in diff.items())
            raise DatasetError(
                f"{path}: {self.root} holds a different dataset ({what}). Use another output directory, "
                "or the dataset's own settings (e.g. its --task and --split) to resume it."
            )

    def _scan_data_files(self) -> list[dict[str, Any]]:
        found: dict[int, Path] = {}
        data_dir = self.root / "data"
        for path in sorted(data_dir.rglob("*.parquet")) if data_dir.is_dir() else []:
            rel = path.relative_to(self.root).as_posix()
            m = _DATA_FILE.match(rel)
            if m is None or int(m.group(2)) >= self.chunks_size:
                raise DatasetError(
                    f"{path}: unexpected file in data/ (expected data/chunk-XXX/file-YYY.parquet with "
                    f"YYY < chunks_size={self.chunks_size}). Move it out of the dataset root."
                )
            found[int(m.group(1)) * self.chunks_size + int(m.group(2))] = path
        records = []
        for e in range(len(found)):
            path = self._data_path(e)
            if e not in found:
                later = sorted(i for i in found if i > e)
                raise DatasetError(
                    f"{path}: missing, but later episodes {later[:5]} exist. Episodes must be contiguous: "
                    f"restore the file, or delete the episode files after it, then rerun collection."
                )
            record, n_rows = read_episode_record(path)
            problems = []
            if record.get("episode_index") != e:
                problems.append(f"records episode_index {record.get('episode_index')}, its path says {e}")
            if record.get("length") != n_rows:
                problems.append(f"records length {record.get('length')} but has {n_rows} rows")
            expected_from = sum(int(r["length"]) for r in records)
            if record.get("dataset_from_index") != expected_from:
                problems.append(
                    f"starts at global index {record.get('dataset_from_index')}, not {expected_from}"
                )
            for key in ("benchmark_task", "split", "fps"):
                if record.get(key) != getattr(self, key):
                    problems.append(f"has {key}={record.get(key)!r}, the writer {getattr(self, key)!r}")
            if problems:
                raise DatasetError(
                    f"{path}: inconsistent episode file ({'; '.join(problems)}). Move it and later episode "
                    "files out of the root and rerun collection."
                )
            records.append(record)
        seeds: dict[int, int] = {}
        for r in records:
            if int(r["seed"]) in seeds:
                raise DatasetError(
                    f"{self.root / 'data'}: seed {r['seed']} appears in episodes {seeds[int(r['seed'])]} and "
                    f"{r['episode_index']}. Delete the later episode file and every one after it."
                )
            seeds[int(r["seed"])] = int(r["episode_index"])
        return records

    def _data_path(self, episode_index: int) -> Path:
        chunk, file = divmod(episode_index, self.chunks_size)
        return self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)

    def _tasks_from_records(self, records: list[dict[str, Any]]) -> dict[str, int]:
        tasks: dict[str, int] = {}
        for r in records:
            for task, idx in r["task_indices"].items():
                if tasks.setdefault(task, int(idx)) != int(idx):
                    raise DatasetError(
                        f"{self._data_path(r['episode_index'])}: task "
                        f"{task!r} has index {idx} here but {tasks[task]} in an earlier episode. Move this "
                        "file and later ones out of the root and rerun collection."
                    )
        if sorted(tasks.values()) != list(range(len(tasks))):
            raise DatasetError(f"{self.root / 'data'}: task indices {sorted(tasks.values())} are not 0..n-1")
        return tasks

    def _read_rejected(self) -> set[int]:
        path = self.root / REJECTED_PATH
        if not path.is_file():
            return set()
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return {int(s) for s in d["seeds"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DatasetError(
                f"{path}: unreadable rejected-seed record ({e!r}). Delete it; the rejected seeds are then "
                "tried (and rejected) again."
            ) from e

    def _write_rejected(self) -> None:
        atomic_write_json(
            self.root / REJECTED_PATH,
            {"benchmark_task": self.benchmark_task, "split": self.split, "seeds": sorted(self._rejected)},
        )

    def _write_meta(self) -> None:
        # info.json goes last: a reader that finds it consistent with the other meta files knows
        # they all describe the same data files.
        info = self._info()
        tasks = io.BytesIO()
        tasks_frame(sorted(self._tasks, key=self._tasks.__getitem__)).to_parquet(tasks)
        # No fsync: meta is rebuilt from the (durable) data files whenever a writer opens the root.
        atomic_write_bytes(self.root / TASKS_PATH, tasks.getvalue(), durable=False)
        episodes = episodes_table(self._records, self.chunks_size)
        atomic_write_parquet(self.root / EPISODES_PATH, episodes, durable=False)
        stats = aggregate_stats([r["stats"] for r in self._records],
                                [r.get("quantile_sketch") for r in self._records])
        atomic_write_json(self.root / STATS_PATH, stats, durable=False)
        atomic_write_json(self.root / INFO_PATH, info.to_dict(), durable=False)
        self._last_meta_write = time.monotonic()


def _as_int(x: Any, name: str) -> int:
    try:
        i = int(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {x!r}") from None
    if i != x:
        raise ValueError(f"{name} must be an integer, got {x!r}")
    return i
