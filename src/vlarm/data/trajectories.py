"""Closed-loop (``ee_delta``) oracle trajectories in a LeRobot v3.0-style layout, for RT-1.

A trajectory dataset is kept apart from the pick-and-place datasets by its ``action_mode`` ("ee_delta"), recorded
in ``meta/info.json`` with the other observation settings; opening one with the other mode's reader, or resuming
it with other settings, is refused. Layout::

    meta/info.json                          codebase_version v3.0, fps (= the control rate, 10), features, counts,
                                            action_mode, benchmark_task, split, image_scale, camera_scale, renderer
    meta/tasks.parquet                      instruction string (index) -> task_index
    data/chunk-000/file-{e:03d}.parquet     one episode per file; columns below

Frame columns: ``observation.images.front`` (PNG of the policy camera, ``(H, W, 3)`` uint8),
``observation.state`` ``(8,)`` float32 (tip xyz metres, quaternion xyzw, holding flag), ``action`` ``(6,)``
float32 (translation x y z metres, yaw radians, suction 0/1, terminate 0/1), ``next.reward`` float32,
``next.done`` bool, ``timestamp`` (frame_index / fps), ``frame_index``, ``episode_index``, ``task_index``.
The last frame of an episode is the scene after the goal was met, with the expert's terminate action (RT-1's
mode token). The footer of each data file records ``seed`` and ``total_reward``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from vlarm.data._io import atomic_write_json, atomic_write_parquet, decode_png, encode_png
from vlarm.data.errors import DatasetError
from vlarm.data.info import CODEBASE_VERSION, COLLECT_FLAGS, collection_renderer
from vlarm.data.storage import tasks_frame
from vlarm.envs import make_env
from vlarm.sim.cameras import RENDERER
from vlarm.sim.servo import CONTROL_HZ, MAX_TRANSLATION
from vlarm.tasks import SUCCESS_THRESHOLD
from vlarm.tasks.attributes import split_seed

ACTION_MODE = "ee_delta"
IMAGE_KEY = "observation.images.front"
ACTION_NAMES = ["translation.x", "translation.y", "translation.z", "yaw", "suction", "terminate"]
_FILE = "data/chunk-000/file-{:03d}.parquet"
_INFO = "meta/info.json"


def ee_action_vector(action: dict) -> np.ndarray:
    """An ``ee_delta`` action dict -> ``(6,)`` float32 (translation m, yaw rad, suction 0/1, terminate 0/1)."""
    return np.concatenate([np.asarray(action["translation"], np.float32).reshape(3),
                           np.asarray(action["yaw"], np.float32).reshape(1),
                           [float(action["suction"]), float(action["terminate"])]]).astype(np.float32)


def ee_action_dict(vector) -> dict:
    """Inverse of :func:`ee_action_vector`."""
    v = np.asarray(vector, np.float32)
    return {"translation": v[:3].copy(), "yaw": v[3:4].copy(), "suction": int(v[4] > 0.5),
            "terminate": int(v[5] > 0.5)}


def perturb(action: dict, noise: float, rng: np.random.Generator) -> dict:
    """``action`` with Gaussian noise added to each translation axis (clipped to the action space); yaw, suction and
    terminate unchanged. The standard deviation is ``noise`` metres for a full step (:data:`MAX_TRANSLATION` on
    some axis) and shrinks in proportion to the commanded step, so the expert still settles within its few-mm
    tolerance where it slows down at a goal. DART (Laskey et al., CoRL 2017, Sec. 4): the expert *executes*
    perturbed controls so that its demonstrations visit, and label, the states a learner's small errors lead to."""
    translation = np.asarray(action["translation"], np.float64)
    scale = min(1.0, float(np.max(np.abs(translation))) / MAX_TRANSLATION)
    translation = translation + rng.normal(0.0, noise * scale, 3)
    return {**action, "translation": np.clip(translation, -MAX_TRANSLATION, MAX_TRANSLATION).astype(np.float32)}


def check_expert_noise(expert_noise: float) -> float:
    """``expert_noise`` (metres) if it is a finite number >= 0.

    Raises:
        ValueError: a negative or non-finite value.
    """
    if not (np.isfinite(expert_noise) and expert_noise >= 0):
        raise ValueError(f"expert_noise (--expert-noise) is a standard deviation in metres (>= 0), got {expert_noise}")
    return float(expert_noise)


def run_ee_oracle_episode(env, seed: int, split: str, expert_noise: float = 0.0) -> tuple[list[dict], float]:
    """Roll out the ``ee_delta`` expert (:meth:`vlarm.envs.closed_loop.ClosedLoopEnv.oracle_action`) for one seed.

    Args:
        env: a :class:`vlarm.envs.closed_loop.ClosedLoopEnv`.
        seed: episode seed.
        split: the seed's split.
        expert_noise: DART noise, metres (standard deviation per translation axis of a full step, :func:`perturb`),
            added to the *executed* action whenever the expert's command corrects it on the next step
            (:attr:`ClosedLoopEnv.oracle_correcting`: approach, lift, retreat; never during a descent); the
            recorded label is always the expert's clean command. The noise is seeded by ``seed``, so an episode
            is reproducible. 0: the clean expert.

    Returns:
        ``(frames, total_reward)``; a frame holds the observation before its action (``rgb``, ``state``,
        ``instruction``), the action as a ``(6,)`` vector, ``reward`` and ``done``; a final frame with the
        terminate action closes a terminated episode.

    Raises:
        ValueError: ``expert_noise`` is negative or not finite.
    """
    check_expert_noise(expert_noise)
    rng = np.random.default_rng([int(seed), 17])
    obs, _ = env.reset(seed=seed, options={"split": split})
    frames: list[dict] = []
    total, terminated = 0.0, False
    while True:
        action = env.oracle_action()
        frame = {"rgb": obs["rgb"], "state": obs["state"], "instruction": obs["instruction"],
                 "action": ee_action_vector(action)}
        if terminated or action["terminate"]:
            frames.append({**frame, "action": ee_action_vector({**action, "terminate": 1}), "reward": 0.0,
                           "done": True})
            break
        if expert_noise > 0 and env.oracle_correcting:
            action = perturb(action, expert_noise, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        total = info["total_reward"]
        frames.append({**frame, "reward": float(reward), "done": bool(truncated)})
        if truncated:
            break
    return frames, total


def _episode_table(frames: list[dict], episode: int, task_index: dict[str, int], record: dict) -> pa.Table:
    n = len(frames)
    idx = np.arange(n, dtype=np.int64)

    def fixed(rows, width):
        return pa.FixedSizeListArray.from_arrays(pa.array(np.stack(rows).astype(np.float32).reshape(-1)), width)

    table = pa.table({
        IMAGE_KEY: pa.StructArray.from_arrays([pa.array([encode_png(f["rgb"]) for f in frames], pa.binary()),
                                               pa.nulls(n, pa.string())], names=["bytes", "path"]),
        "observation.state": fixed([f["state"] for f in frames], 8),
        "action": fixed([f["action"] for f in frames], 6),
        "next.reward": pa.array([f["reward"] for f in frames], pa.float32()),
        "next.done": pa.array([f["done"] for f in frames], pa.bool_()),
        "timestamp": pa.array((idx / CONTROL_HZ).astype(np.float32)),
        "frame_index": pa.array(idx),
        "episode_index": pa.array(np.full(n, episode, np.int64)),
        "task_index": pa.array([task_index[f["instruction"]] for f in frames], pa.int64()),
    })
    return table.replace_schema_metadata({b"vlarm.trajectory": json.dumps(record).encode()})


def _features(image_shape) -> dict:
    h, w = image_shape
    return {
        IMAGE_KEY: {"dtype": "image", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                    "description": "front camera RGB, uint8, PNG"},
        "observation.state": {"dtype": "float32", "shape": [8], "description": "tip xyz (m), quaternion xyzw, "
                              "1 when suction holds an object"},
        "action": {"dtype": "float32", "shape": [6], "names": ACTION_NAMES,
                   "description": "ee_delta: translation (m), yaw (rad), suction 0/1, terminate 0/1"},
        "next.reward": {"dtype": "float32", "shape": [1]}, "next.done": {"dtype": "bool", "shape": [1]},
        "timestamp": {"dtype": "float32", "shape": [1]}, "frame_index": {"dtype": "int64", "shape": [1]},
        "episode_index": {"dtype": "int64", "shape": [1]}, "task_index": {"dtype": "int64", "shape": [1]},
    }


def collect_trajectories(task: str, split: str, episodes: int, out: str | Path, camera_scale: float = 0.5,
                         image_scale: float = 0.2, expert_noise: float = 0.0, renderer: str = RENDERER,
                         progress: bool = True) -> dict:
    """Collect ``episodes`` successful ``ee_delta`` expert trajectories (final total reward > 0.99) at ``out``.

    Seeds are the split's (``split_seed(split, i)`` in order; failed seeds are skipped and counted). A rerun with
    the same settings resumes: episodes on disk are kept and their seeds skipped.

    Args:
        task: a task with an ``ee_delta`` mode (ValueError otherwise).
        split: ``"train"``, ``"val"`` or ``"test"``.
        episodes: successful episodes wanted.
        out: dataset root.
        camera_scale: planning-camera resolution (the expert's pick and place planning).
        image_scale: policy camera resolution relative to 480x640 (0.2: 96 x 128).
        expert_noise: DART noise in metres (:func:`run_ee_oracle_episode`), recorded in ``meta/info.json``.
        renderer: ``"tiny"``, ``"egl"`` or ``"auto"`` (:func:`vlarm.data.info.collection_renderer`); recorded.
        progress: tqdm bar.

    Returns:
        ``{"episodes", "frames", "tried", "failed_seeds"}``.

    Raises:
        DatasetError: ``out`` holds a dataset with other settings (or a pick-and-place dataset).
        ValueError: a negative or non-finite ``expert_noise``.
    """
    check_expert_noise(expert_noise)
    root = Path(out)
    env = make_env(task, action_mode=ACTION_MODE, split=split, camera_scale=camera_scale, image_scale=image_scale,
                   renderer=collection_renderer(renderer, root))
    settings = {"action_mode": ACTION_MODE, "benchmark_task": task, "split": split,
                "camera_scale": float(camera_scale), "image_scale": float(image_scale), "renderer": env.scene.renderer,
                "image_shape": list(env.policy_camera.image_size), "expert_noise": float(expert_noise)}
    try:
        old = _trajectory_info(root) if (root / _INFO).is_file() else {}
    except DatasetError:
        env.close()
        raise
    legacy = {"expert_noise": 0.0}      # datasets written before the setting existed
    diffs = [(k, old.get(k, legacy.get(k)), v) for k, v in settings.items() if old and old.get(k, legacy.get(k)) != v]
    if diffs:
        env.close()
        flags = {**COLLECT_FLAGS, "expert_noise": "--expert-noise"}
        said = "; ".join(f"{k} {recorded!r}, this run asks for {asked!r}" + (f" ({flags[k]})" if k in flags else "")
                         for k, recorded, asked in diffs)
        raise DatasetError(f"{root} was collected with other settings: {said}; pass the same options to resume, "
                           "or a new --out")
    records = [json.loads(pq.read_metadata(p).metadata[b"vlarm.trajectory"])
               for p in sorted(root.glob("data/chunk-000/file-*.parquet"))]
    failed = list(old.get("failed_seeds", []))
    tasks = list(old.get("instructions", []))
    done = {r["seed"] for r in records} | set(failed)
    bar = tqdm(total=episodes, initial=min(len(records), episodes), desc=f"trajectories {task}", disable=not progress)
    index, tried = 0, 0
    try:
        while len(records) < episodes:
            seed = split_seed(split, index)
            index += 1
            if seed in done:
                continue
            tried += 1
            frames, total = run_ee_oracle_episode(env, seed, split, expert_noise)
            if total <= SUCCESS_THRESHOLD:
                failed.append(seed)
            else:
                for f in frames:
                    if f["instruction"] not in tasks:
                        tasks.append(f["instruction"])
                record = {"seed": seed, "total_reward": total, "length": len(frames),
                          "episode_index": len(records)}
                table = _episode_table(frames, len(records), {t: i for i, t in enumerate(tasks)}, record)
                atomic_write_parquet(root / _FILE.format(len(records)), table)
                records.append(record)
                bar.update(1)
            _write_meta(root, settings, records, tasks, failed, env.policy_camera.image_size)
    finally:
        bar.close()
        env.close()
    return {"episodes": len(records), "frames": sum(r["length"] for r in records), "tried": tried,
            "failed_seeds": failed}


def _write_meta(root: Path, settings: dict, records: list[dict], tasks: list[str], failed: list[int],
                image_shape) -> None:
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": "vlarm-suction-iiwa", "fps": CONTROL_HZ,
            "total_episodes": len(records), "total_frames": sum(r["length"] for r in records),
            "total_tasks": len(tasks), "chunks_size": 1000, "data_path": _FILE.replace("{:03d}", "{file_index:03d}"),
            "features": _features(image_shape), **settings, "instructions": tasks, "failed_seeds": failed,
            "seeds": [r["seed"] for r in records]}
    atomic_write_json(root / _INFO, info, durable=False)
    atomic_write_parquet(root / "meta/tasks.parquet", pa.Table.from_pandas(tasks_frame(tasks)), durable=False)


def _trajectory_info(root: str | Path) -> dict:
    """The ``meta/info.json`` of a trajectory dataset at ``root``.

    Raises:
        DatasetError: no readable ``meta/info.json``, or a dataset of another action mode (pick-and-place).
    """
    try:
        info = json.loads((Path(root) / _INFO).read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{root}: no readable {_INFO} ({err}); collect with `vlarm collect --action-mode "
                           "ee_delta --out DIR`") from None
    if not isinstance(info, dict) or info.get("action_mode") != ACTION_MODE:
        raise DatasetError(f"{root} holds pick-and-place demonstrations, not {ACTION_MODE} trajectories; the two "
                           "modes are never mixed: pass another directory")
    return info


def recorded_task(root: str | Path) -> str:
    """The task a trajectory dataset at ``root`` was collected for (``meta/info.json`` ``benchmark_task``).

    Raises:
        DatasetError: see :func:`_trajectory_info`.
    """
    return str(_trajectory_info(root).get("benchmark_task"))


@dataclass
class Trajectories:
    """Closed-loop trajectories in memory (one dataset or several concatenated).

    Attributes:
        images: ``(N, H, W, 3)`` uint8 frames of every episode, episode after episode.
        actions: ``(N, 6)`` float32 ``ee_delta`` vectors.
        instructions: ``N`` strings (each frame's instruction).
        starts: ``(E,)`` int64 index of each episode's first frame; ``lengths``: ``(E,)`` frames per episode.
        tasks: ``E`` task names; ``seeds``: ``E`` episode seeds.
        fps: control rate, Hz.
        split: the episodes' split.
        states: ``(N, 8)`` float32 ``observation.state`` of every frame (tip xyz metres, quaternion xyzw, holding
            flag); None for data built in memory without them.
        renderer: renderer of the images (``meta/info.json``; concatenated datasets must agree).
    """

    images: np.ndarray
    actions: np.ndarray
    instructions: list[str]
    starts: np.ndarray
    lengths: np.ndarray
    tasks: list[str]
    seeds: list[int]
    fps: int = CONTROL_HZ
    split: str = "train"
    states: np.ndarray | None = None
    renderer: str = RENDERER

    @classmethod
    def open(cls, root: str | Path, episodes: int | None = None) -> Trajectories:
        """Read the first ``episodes`` (all when None) of a trajectory dataset at ``root``.

        Raises:
            DatasetError: no ``meta/info.json``, a dataset of another action mode, or fewer episodes than asked.
        """
        root = Path(root)
        info = _trajectory_info(root)
        n = info["total_episodes"] if episodes is None else int(episodes)
        if n > info["total_episodes"]:
            raise DatasetError(f"{root} has {info['total_episodes']} episodes, {n} asked")
        images, actions, states, instructions, lengths, seeds = [], [], [], [], [], []
        for e in range(n):
            table = pq.read_table(root / _FILE.format(e))
            images += [decode_png(b) for b in table.column(IMAGE_KEY).combine_chunks().field("bytes").to_pylist()]
            actions.append(table.column("action").combine_chunks().flatten().to_numpy().reshape(-1, 6))
            states.append(table.column("observation.state").combine_chunks().flatten().to_numpy().reshape(-1, 8))
            instructions += [info["instructions"][i] for i in table.column("task_index").to_pylist()]
            lengths.append(table.num_rows)
            seeds.append(info["seeds"][e])
        lengths = np.asarray(lengths, np.int64)
        return cls(np.stack(images), np.concatenate(actions).astype(np.float32), instructions,
                   np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64), lengths,
                   [info["benchmark_task"]] * n, seeds, int(info["fps"]), info["split"],
                   np.concatenate(states).astype(np.float32), info.get("renderer") or RENDERER)

    @classmethod
    def concat(cls, parts: list[Trajectories]) -> Trajectories:
        """Several datasets as one (multi-task training); ValueError on different fps, image sizes or renderers."""
        if len({p.fps for p in parts}) != 1 or len({p.images.shape[1:] for p in parts}) != 1 \
                or len({p.renderer for p in parts}) != 1:
            raise ValueError("trajectory datasets with different fps, image sizes or renderers cannot be mixed "
                             f"(fps {sorted({p.fps for p in parts})}, renderers {sorted({p.renderer for p in parts})})")
        states = None if any(p.states is None for p in parts) else np.concatenate([p.states for p in parts])
        offsets = np.cumsum([0] + [len(p.images) for p in parts[:-1]])
        return cls(np.concatenate([p.images for p in parts]), np.concatenate([p.actions for p in parts]),
                   [s for p in parts for s in p.instructions],
                   np.concatenate([p.starts + o for p, o in zip(parts, offsets, strict=True)]),
                   np.concatenate([p.lengths for p in parts]), [t for p in parts for t in p.tasks],
                   [s for p in parts for s in p.seeds], parts[0].fps, parts[0].split, states, parts[0].renderer)

    def window(self, frame: int, history: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the ``history`` frames ending at ``frame`` within its episode, the start padded by repeating
        the episode's first frame, and a ``(history,)`` bool mask of the frames that are not padding."""
        e = int(np.searchsorted(self.starts, frame, side="right") - 1)
        first = int(self.starts[e])
        raw = np.arange(frame - history + 1, frame + 1)
        return np.maximum(raw, first), raw >= first


__all__ = ["ACTION_MODE", "Trajectories", "check_expert_noise", "collect_trajectories", "ee_action_dict",
           "ee_action_vector", "perturb", "recorded_task", "run_ee_oracle_episode"]
