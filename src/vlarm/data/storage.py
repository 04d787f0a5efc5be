"""Parquet encoding of one episode's frames (``data/chunk-XXX/file-XXX.parquet``) and of the meta tables.

A data file holds the frames of exactly one episode, in LeRobot v3.0's column layout:

========================== ============================================== =============================
column                     arrow type                                     content
========================== ============================================== =============================
observation.images.color   struct<bytes: binary, path: string>            PNG of the (H, W, 3) RGB map
observation.heightmap      fixed_size_list<fixed_size_list<float32,W>,H>  metres, float32 exact
observation.state          fixed_size_list<float32, 7>                    xyz (m) + quaternion xyzw
action                     fixed_size_list<float32, 14>                   pick pose (7) + place pose (7)
next.reward / next.done    float32 / bool
timestamp                  float32                                        frame_index / fps, seconds
frame_index, episode_index, index, task_index   int64
========================== ============================================== =============================

Compression is zstd with byte-stream-split floats and page CRC checksums, so corruption inside a file is
detected on read, and truncation (no footer) on open. The footer's key-value metadata ``vlarm.episode``
carries the episode's own record (seed, task strings, total reward, per-episode stats and quantile
sketches), which makes the data files alone sufficient to rebuild every meta file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vlarm.data._io import encode_png
from vlarm.data.errors import DatasetError
from vlarm.data.info import (
    ACTION_KEY,
    COLOR_KEY,
    DONE_KEY,
    HEIGHTMAP_KEY,
    REWARD_KEY,
    STATE_KEY,
)
from vlarm.data.stats import episode_sketches, episode_stats

#: Key of the episode record in each data file's parquet footer metadata.
EPISODE_META_KEY = b"vlarm.episode"
#: Version of the episode record; bump when its fields change incompatibly.
EPISODE_META_VERSION = 1

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    # Byte-stream-split shrinks float columns ~10% under zstd; it applies to leaf columns only.
    "use_byte_stream_split": [
        f"{HEIGHTMAP_KEY}.list.element.list.element",
        f"{STATE_KEY}.list.element",
        f"{ACTION_KEY}.list.element",
        REWARD_KEY,
        "timestamp",
    ],
    "use_dictionary": False,
    "write_page_checksum": True,
}

FRAME_KEYS = ("colormap", "heightmap", "state", "pick_pose", "place_pose", "reward", "done", "instruction")

EPISODE_COLUMNS: dict[str, pa.DataType] = {
    "episode_index": pa.int64(),
    "tasks": pa.list_(pa.string()),
    "length": pa.int64(),
    "data/chunk_index": pa.int64(),
    "data/file_index": pa.int64(),
    "dataset_from_index": pa.int64(),
    "dataset_to_index": pa.int64(),
    "meta/episodes/chunk_index": pa.int64(),
    "meta/episodes/file_index": pa.int64(),
    "seed": pa.int64(),
    "benchmark_task": pa.string(),
    "split": pa.string(),
    "total_reward": pa.float64(),
}


def validate_frames(frames: Sequence[dict[str, Any]], image_shape: tuple[int, int]) -> dict[str, Any]:
    """Check a list of frame dicts and stack it into arrays.

    Args:
        frames: non-empty list of dicts with keys ``colormap`` (H, W, 3) uint8, ``heightmap`` (H, W)
            float metres, ``state`` / ``pick_pose`` / ``place_pose`` (7,) float (xyz m + quaternion xyzw),
            ``reward`` float, ``done`` bool, ``instruction`` non-empty str.
        image_shape: expected ``(H, W)``.

    Returns:
        ``{"colormap": (N,H,W,3) uint8, "heightmap": (N,H,W) float32, "state": (N,7) float32,
        "action": (N,14) float32, "reward": (N,) float32, "done": (N,) bool, "instruction": [str]}``.

    Raises:
        ValueError: a frame lacks a key or has a wrong shape, dtype or a non-finite value.
    """
    if isinstance(frames, dict) or not isinstance(frames, Sequence) or len(frames) == 0:
        raise ValueError("frames must be a non-empty list of frame dicts")
    h, w = image_shape
    out: dict[str, list] = {k: [] for k in ("colormap", "heightmap", "state", "action", "reward", "done")}
    out["instruction"] = []
    for t, f in enumerate(frames):
        missing = [k for k in FRAME_KEYS if k not in f]
        if missing:
            raise ValueError(f"frame {t} lacks keys {missing}; a frame needs {list(FRAME_KEYS)}")
        cm = np.asarray(f["colormap"])
        if cm.dtype != np.uint8 or cm.shape != (h, w, 3):
            raise ValueError(f"frame {t}: colormap must be uint8 {(h, w, 3)}, got {cm.dtype} {cm.shape}")
        hm = np.asarray(f["heightmap"])
        if not np.issubdtype(hm.dtype, np.floating) or hm.shape != (h, w):
            raise ValueError(f"frame {t}: heightmap must be float {(h, w)} metres, got {hm.dtype} {hm.shape}")
        hm = hm.astype(np.float32, copy=False)
        if not np.isfinite(hm).all():
            raise ValueError(f"frame {t}: heightmap has non-finite values")
        poses = []
        for key in ("state", "pick_pose", "place_pose"):
            p = np.asarray(f[key], dtype=np.float32)
            if p.shape != (7,) or not np.isfinite(p).all():
                raise ValueError(f"frame {t}: {key} must be 7 finite floats (xyz + quaternion xyzw), got {p}")
            poses.append(p)
        try:
            reward = float(f["reward"])
        except (TypeError, ValueError):
            raise ValueError(f"frame {t}: reward must be a float, got {f['reward']!r}") from None
        if not np.isfinite(reward):
            raise ValueError(f"frame {t}: reward must be finite, got {reward}")
        done = f["done"]
        if not isinstance(done, bool | np.bool_):
            raise ValueError(f"frame {t}: done must be a bool, got {done!r}")
        instr = f["instruction"]
        if not isinstance(instr, str) or not instr.strip():
            raise ValueError(f"frame {t}: instruction must be a non-empty string, got {instr!r}")
        out["colormap"].append(cm)
        out["heightmap"].append(hm)
        out["state"].append(poses[0])
        out["action"].append(np.concatenate(poses[1:]))
        out["reward"].append(reward)
        out["done"].append(bool(done))
        out["instruction"].append(instr)
    return {
        "colormap": np.stack(out["colormap"]),
        "heightmap": np.stack(out["heightmap"]),
        "state": np.stack(out["state"]),
        "action": np.stack(out["action"]),
        "reward": np.asarray(out["reward"], dtype=np.float32),
        "done": np.asarray(out["done"], dtype=bool),
        "instruction": out["instruction"],
    }


def _fixed_list(values: np.ndarray) -> pa.Array:
    """Nested fixed-size lists for an ``(N, d1, ..., dk)`` array (innermost dimension first)."""
    arr: pa.Array = pa.array(np.ascontiguousarray(values).reshape(-1))
    for d in reversed(values.shape[1:]):
        arr = pa.FixedSizeListArray.from_arrays(arr, d)
    return arr


def episode_table(
    arrays: dict[str, Any],
    *,
    episode_index: int,
    index_from: int,
    task_indices: Sequence[int],
    fps: int,
    record: dict[str, Any],
) -> tuple[pa.Table, dict[str, Any]]:
    """Build the arrow table of one episode from :func:`validate_frames` output.

    Args:
        arrays: stacked frame arrays.
        episode_index: the episode's index in the dataset.
        index_from: global index of its first frame.
        task_indices: task_index of each frame.
        fps: frames per second (``timestamp = frame_index / fps``).
        record: episode record (seed, tasks, ...) stored in the footer under ``vlarm.episode``; the
            per-episode ``stats`` and ``quantile_sketch`` entries are added here.

    Returns:
        ``(table, record)``: the table with the record in its schema metadata (write it with
        :data:`PARQUET_OPTIONS`), and the record as stored, ``stats`` included.
    """
    n = len(arrays["instruction"])
    frame_index = np.arange(n, dtype=np.int64)
    columns = {
        COLOR_KEY: pa.StructArray.from_arrays(
            [pa.array([encode_png(im) for im in arrays["colormap"]], pa.binary()), pa.nulls(n, pa.string())],
            names=["bytes", "path"],
        ),
        HEIGHTMAP_KEY: _fixed_list(arrays["heightmap"]),
        STATE_KEY: _fixed_list(arrays["state"]),
        ACTION_KEY: _fixed_list(arrays["action"]),
        REWARD_KEY: pa.array(arrays["reward"], pa.float32()),
        DONE_KEY: pa.array(arrays["done"], pa.bool_()),
        "timestamp": pa.array((frame_index / fps).astype(np.float32), pa.float32()),
        "frame_index": pa.array(frame_index),
        "episode_index": pa.array(np.full(n, episode_index, dtype=np.int64)),
        "index": pa.array(index_from + frame_index),
        "task_index": pa.array(np.asarray(task_indices, dtype=np.int64)),
    }
    stat_columns = {
        COLOR_KEY: arrays["colormap"],
        HEIGHTMAP_KEY: arrays["heightmap"],
        STATE_KEY: arrays["state"],
        ACTION_KEY: arrays["action"],
        REWARD_KEY: arrays["reward"],
        DONE_KEY: arrays["done"],
        "timestamp": frame_index / fps,
        "frame_index": frame_index,
        "episode_index": np.full(n, episode_index),
        "index": index_from + frame_index,
        "task_index": np.asarray(task_indices),
    }
    stats = episode_stats(stat_columns)
    # The sketches let the writer pool quantiles over episodes exactly (see vlarm.data.stats).
    record = {**record, "format_version": EPISODE_META_VERSION, "stats": stats,
              "quantile_sketch": episode_sketches(stat_columns)}
    table = pa.table(columns)
    table = table.replace_schema_metadata({EPISODE_META_KEY: json.dumps(record).encode("utf-8")})
    return table, record


def read_episode_record(path: Path) -> tuple[dict[str, Any], int]:
    """Read a data file's footer: its ``vlarm.episode`` record and its number of rows.

    Raises:
        DatasetError: the file is truncated or not parquet, or lacks a valid record.
    """
    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(
            f"{path}: corrupt or truncated parquet file ({e}). Delete it and every later episode file, "
            "then rerun collection: the missing seeds are recollected."
        ) from e
    kv = meta.metadata or {}
    try:
        record = json.loads(kv[EPISODE_META_KEY])
        if not isinstance(record, dict) or record.get("format_version") != EPISODE_META_VERSION:
            raise ValueError(f"unsupported record {str(record)[:80]}")
    except (KeyError, ValueError) as e:
        raise DatasetError(
            f"{path}: not a vlarm episode file (footer metadata '{EPISODE_META_KEY.decode()}' is missing "
            f"or invalid: {e!r}). Remove files that were not written by EpisodeWriter from data/."
        ) from None
    return record, meta.num_rows


def read_episode_table(path: Path) -> pa.Table:
    """Read a whole data file, verifying page checksums.

    Raises:
        DatasetError: the file is missing or corrupt (message names it and how to recover).
    """
    try:
        # ParquetFile.read is ~2x faster than read_table for small files (no dataset machinery).
        with pq.ParquetFile(path, page_checksum_verification=True) as f:
            return f.read(use_threads=False)
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(
            f"{path}: cannot read episode data ({e}). The file is corrupt: delete it and every later "
            "episode file, then rerun collection."
        ) from e


def decode_columns(table: pa.Table, image_shape: tuple[int, int]) -> dict[str, Any]:
    """Turn a data-file table into numpy arrays (images stay PNG bytes; see ``_io.decode_png``).

    Returns:
        ``{"png": [bytes], "heightmap": (N,H,W) float32, "state": (N,7) float32, "action": (N,14)
        float32, "reward": (N,) float32, "done": (N,) bool, "frame_index", "episode_index", "index",
        "task_index": (N,) int64}``.
    """
    h, w = image_shape
    n = table.num_rows

    def flat(key: str, inner: int) -> np.ndarray:
        arr = table.column(key).combine_chunks()
        for _ in range(inner):
            arr = arr.flatten()
        return arr.to_numpy(zero_copy_only=False)

    color = table.column(COLOR_KEY).combine_chunks()
    return {
        "png": color.field("bytes").to_pylist(),
        "heightmap": flat(HEIGHTMAP_KEY, 2).reshape(n, h, w),
        "state": flat(STATE_KEY, 1).reshape(n, 7),
        "action": flat(ACTION_KEY, 1).reshape(n, 14),
        "reward": table.column(REWARD_KEY).to_numpy(),
        "done": table.column(DONE_KEY).to_numpy(),
        "frame_index": table.column("frame_index").to_numpy(),
        "episode_index": table.column("episode_index").to_numpy(),
        "index": table.column("index").to_numpy(),
        "task_index": table.column("task_index").to_numpy(),
    }


def episodes_table(records: Sequence[dict[str, Any]], chunks_size: int) -> pa.Table:
    """Build ``meta/episodes`` (one row per episode) from the data files' episode records.

    Besides LeRobot v3.0's columns it has vlarm's ``seed``, ``benchmark_task``, ``split``,
    ``total_reward`` and, as LeRobot does, per-episode ``stats/<feature>/<stat>`` columns.
    """
    rows = []
    for r in records:
        e = int(r["episode_index"])
        chunk, file = divmod(e, chunks_size)
        rows.append(
            {
                "episode_index": e,
                "tasks": list(r["tasks"]),
                "length": int(r["length"]),
                "data/chunk_index": chunk,
                "data/file_index": file,
                "dataset_from_index": int(r["dataset_from_index"]),
                "dataset_to_index": int(r["dataset_from_index"]) + int(r["length"]),
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
                "seed": int(r["seed"]),
                "benchmark_task": r["benchmark_task"],
                "split": r["split"],
                "total_reward": float(r["total_reward"]),
            }
        )
    table = pa.Table.from_pylist(rows, schema=pa.schema(list(EPISODE_COLUMNS.items())))
    if records:
        # Only the stats every episode has (episodes written by an older vlarm lack quantiles and next.done).
        for key, st in records[0]["stats"].items():
            for stat in st:
                if not all(stat in r["stats"].get(key, {}) for r in records):
                    continue
                values = [r["stats"][key][stat] for r in records]
                table = table.append_column(f"stats/{key}/{stat}", pa.array(values))
    return table


def tasks_frame(tasks: Sequence[str]) -> pd.DataFrame:
    """``meta/tasks.parquet`` as LeRobot keeps it: task strings as the index, a ``task_index`` column."""
    return pd.DataFrame(
        {"task_index": np.arange(len(tasks), dtype=np.int64)},
        index=pd.Index(list(tasks), name="task", dtype=object),
    )
