"""Oracle demonstration collection (CLIPort/Ravens ``demos.py`` protocol).

Seeds follow the split convention (train even, val odd, test odd + 10000; ``vlarm.tasks.attributes.split_seed``);
only episodes whose total reward exceeds 0.99 are kept. Collection is resumable: episodes are written atomically
and seeds already written or rejected are skipped, so a killed run, rerun, ends with exactly N distinct seeds.

Everything that fixes what an observation looks like (task, split, colour map size, camera scale, renderer and
every camera's parameters; ``vlarm.data.info.OBSERVATION_SETTINGS``) is recorded in ``meta/info.json``, and a
resume that asks for other values is refused naming both, so a dataset never mixes observations of two kinds.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from vlarm.data.writer import EpisodeWriter
from vlarm.envs import make_env
from vlarm.tasks import SUCCESS_THRESHOLD, TaskError
from vlarm.tasks.attributes import MAX_VAL_EPISODES, check_episode_count, split_seed


@dataclass
class CollectReport:
    """Summary of a collection run.

    Attributes:
        episodes: episodes in the dataset at the end.
        new_episodes: episodes written by this run.
        rejected: seeds rejected by this run (reward <= 0.99).
        seconds: wall time of this run.
        root: dataset directory.
    """

    episodes: int
    new_episodes: int
    rejected: int
    seconds: float
    root: Path

    @property
    def episodes_per_minute(self) -> float:
        """New episodes (kept + rejected) per minute of wall time."""
        return 60.0 * (self.new_episodes + self.rejected) / max(self.seconds, 1e-9)


def observation_settings(env: Any, split: str, camera_scale: float) -> dict[str, Any]:
    """What fixes the look of ``env``'s observations, as recorded in ``meta/info.json``.

    Args:
        env: a ``vlarm.envs.TabletopEnv`` (its ``task_name``, ``cameras`` and heightmap observation space).
        split: the collection split.
        camera_scale: the camera resolution relative to CLIPort's 480x640 that built ``env``.

    Returns:
        ``{"benchmark_task", "split", "image_shape" [H, W] px, "camera_scale", "renderer" (e.g. "tiny"),
        "cameras" {name: CameraConfig.to_dict()}}`` (``vlarm.data.info.OBSERVATION_SETTINGS``).
    """
    return {
        "benchmark_task": env.task_name,
        "split": split,
        "image_shape": [int(v) for v in env.observation_space["heightmap"].shape],
        "camera_scale": float(camera_scale),
        "renderer": env.scene.renderer,
        "cameras": {cam.name: cam.to_dict() for cam in env.cameras},
    }


def run_oracle_episode(env, seed: int, split: str) -> tuple[list[dict], float]:
    """Roll out the oracle for one seed.

    Returns:
        ``(frames, total_reward)``; a frame holds the observation before the action (``colormap`` uint8
        (320,160,3), ``heightmap`` float32 (320,160), ``state`` (7,)), the action (``pick_pose``, ``place_pose``
        (7,) float32), ``reward``, ``done`` and ``instruction``.
    """
    obs, info = env.reset(seed=seed, options={"split": split})
    frames: list[dict] = []
    total = 0.0
    done = False
    while not done:
        try:
            action = env.oracle_action()
        except TaskError:
            break
        frame = {"colormap": obs["colormap"], "heightmap": obs["heightmap"], "state": env.ee_state(),
                 "pick_pose": action["pick_pose"], "place_pose": action["place_pose"],
                 "instruction": obs["instruction"]}
        obs, reward, terminated, truncated, step_info = env.step(action)
        total = step_info["total_reward"]
        done = terminated or truncated
        frame.update(reward=float(reward), done=bool(done))
        frames.append(frame)
    return frames, total


#: The environment of a collection worker process (built once per process by :func:`_init_worker`).
_WORKER_ENV = None


def _init_worker(task: str, split: str, camera_scale: float, renderer: str) -> None:
    global _WORKER_ENV
    _WORKER_ENV = make_env(task, split=split, camera_scale=camera_scale, renderer=renderer, render_terminal=False)


def _worker_episode(seed: int, split: str) -> tuple[list[dict], float]:
    return run_oracle_episode(_WORKER_ENV, seed, split)


def _seeds(split: str, done: set[int]):
    """Seeds of ``split`` in index order, skipping ``done`` (val stops at its last seed)."""
    index = 0
    while split != "val" or index < MAX_VAL_EPISODES:
        seed = split_seed(split, index)
        index += 1
        if seed not in done:
            yield seed


def collect(task: str, split: str, episodes: int, out: str | Path, camera_scale: float = 1.0, renderer: str = "tiny",
            progress: bool = True, workers: int = 1) -> CollectReport:
    """Collect ``episodes`` successful oracle demonstrations into a LeRobot-style dataset at ``out``.

    Args:
        task: task name (ValueError lists the valid ones if unknown).
        split: ``"train"``, ``"val"`` or ``"test"``.
        episodes: number of successful episodes wanted in the dataset (counting ones already there).
        out: dataset directory (created or resumed).
        camera_scale: camera resolution relative to CLIPort's 480x640 (recorded in ``meta/info.json``).
        renderer: ``"tiny"``, ``"egl"`` or ``"auto"`` (:class:`vlarm.sim.Scene`); the one used is recorded.
        progress: show a tqdm progress bar.
        workers: processes that roll out episodes (each with its own simulator); this process writes them, in seed
            order, so the dataset is the same as with one worker (the first ``episodes`` successful seeds).

    Returns:
        A :class:`CollectReport`.

    Raises:
        ValueError: bad task/split/episodes/camera_scale/workers.
        vlarm.data.DatasetError: ``out`` holds a different or corrupt dataset, one collected with other observation
            settings (camera scale, renderer, cameras, image size, task, split; see
            :func:`vlarm.data.info.check_observation_settings`), or one whose settings cannot be verified.
    """
    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    check_episode_count(split, episodes)
    env = make_env(task, split=split, camera_scale=camera_scale, renderer=renderer, render_terminal=False)
    start = time.perf_counter()
    new = rejected = 0
    try:
        settings = observation_settings(env, split, camera_scale)
        writer = EpisodeWriter(out, settings["benchmark_task"], split, image_shape=tuple(settings["image_shape"]),
                               observation=settings)
    except BaseException:
        env.close()
        raise
    pool = None
    if workers > 1:
        env.close()   # the workers have their own
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(task, split, camera_scale, renderer))
    try:
        with writer:
            seeds = _seeds(split, writer.completed_seeds() | writer.rejected_seeds())
            bar = tqdm(total=episodes, initial=min(writer.num_episodes, episodes), desc=f"collect {task} [{split}]",
                       unit="ep", disable=not progress)
            pending: deque = deque()
            while writer.num_episodes < episodes:
                if pool is None:
                    seed = next(seeds, None)
                    if seed is None:
                        raise ValueError(f"the {split} split ran out of seeds before {episodes} successful episodes")
                    frames, total = run_oracle_episode(env, seed, split)
                else:   # keep every worker busy; results are taken in seed order
                    while len(pending) < 2 * workers and (seed := next(seeds, None)) is not None:
                        pending.append((seed, pool.submit(_worker_episode, seed, split)))
                    if not pending:
                        raise ValueError(f"the {split} split ran out of seeds before {episodes} successful episodes")
                    seed, future = pending.popleft()
                    frames, total = future.result()
                if total > SUCCESS_THRESHOLD and frames:
                    writer.add_episode(frames, seed=seed, total_reward=total)
                    new += 1
                    bar.update(1)
                else:
                    writer.reject(seed)
                    rejected += 1
                bar.set_postfix(rejected=rejected)
            bar.close()
            n = writer.num_episodes
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)   # episodes still in flight are not recorded
        else:
            env.close()
    return CollectReport(n, new, rejected, time.perf_counter() - start, Path(out))
