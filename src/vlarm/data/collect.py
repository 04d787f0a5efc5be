"""Oracle demonstration collection (CLIPort/Ravens ``demos.py`` protocol).

Seeds follow the split convention (train even, val odd, test odd + 10000; ``vlarm.tasks.attributes.split_seed``);
only episodes whose total reward exceeds 0.99 are kept. Collection is resumable: episodes are written atomically
and seeds already written or rejected are skipped, so a killed run, rerun, ends with exactly N distinct seeds.

Parallel collection (``workers > 1`` or a Ray ``address``, :mod:`vlarm.parallel`): Ray actors roll out episodes,
each with its own simulator; this process writes them in seed order, so any number of workers writes the same
dataset as one (byte for byte: the first ``episodes`` successful seeds, same frames), and resuming is unchanged (a
killed run loses only the episodes in flight).

Everything that fixes what an observation looks like (task, split, colour map size, camera scale, renderer and
every camera's parameters; ``vlarm.data.info.OBSERVATION_SETTINGS``) is recorded in ``meta/info.json``, and a
resume that asks for other values is refused naming both, so a dataset never mixes observations of two kinds.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from vlarm.data.info import collection_renderer
from vlarm.data.writer import EpisodeWriter
from vlarm.envs import make_env
from vlarm.parallel import init_ray, map_episodes, uses_ray
from vlarm.sim.cameras import RENDERER
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


def _oracle_episode(env, state, seed: int, split: str) -> tuple[list[dict], float]:
    """:func:`run_oracle_episode` as a :func:`vlarm.parallel.map_episodes` episode (``state`` unused)."""
    return run_oracle_episode(env, seed, split)


def _seeds(split: str, done: set[int]):
    """Seeds of ``split`` in index order, skipping ``done`` (val stops at its last seed)."""
    index = 0
    while split != "val" or index < MAX_VAL_EPISODES:
        seed = split_seed(split, index)
        index += 1
        if seed not in done:
            yield seed


def collect(task: str, split: str, episodes: int, out: str | Path, camera_scale: float = 1.0,
            renderer: str = RENDERER, progress: bool = True, workers: int = 1, address: str | None = None
            ) -> CollectReport:
    """Collect ``episodes`` successful oracle demonstrations into a LeRobot-style dataset at ``out``.

    Args:
        task: task name (ValueError lists the valid ones if unknown).
        split: ``"train"``, ``"val"`` or ``"test"``.
        episodes: number of successful episodes wanted in the dataset (counting ones already there).
        out: dataset directory (created or resumed).
        camera_scale: camera resolution relative to CLIPort's 480x640 (recorded in ``meta/info.json``).
        renderer: ``"tiny"``, ``"egl"`` or ``"auto"`` (EGL where it loads, else tiny; a resumed dataset keeps the
            renderer it records: :func:`vlarm.data.info.collection_renderer`); the one used is recorded.
        progress: show a tqdm progress bar.
        workers: Ray actors rolling out episodes, each with its own simulator, at most ``episodes`` of them (1: in
            this process, Ray not imported). This process writes the episodes in seed order, so the dataset is the
            same for any number.
        address: a Ray cluster to run the workers on (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``;
            :mod:`vlarm.parallel`); None: a local Ray when ``workers > 1``.

    Returns:
        A :class:`CollectReport`.

    Raises:
        ValueError: bad task/split/episodes/camera_scale/workers, or an unreachable ``address``.
        vlarm.data.DatasetError: ``out`` holds a different or corrupt dataset, one collected with other observation
            settings (camera scale, renderer, cameras, image size, task, split; see
            :func:`vlarm.data.info.check_observation_settings`), or one whose settings cannot be verified.
    """
    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    check_episode_count(split, episodes)
    if isinstance(workers, int) and 1 <= episodes < workers:   # more actors than episodes only add start-up time
        workers = episodes
    if uses_ray(workers, address):
        init_ray(workers, address)   # an unreachable cluster fails before the dataset directory is touched
    env = make_env(task, split=split, camera_scale=camera_scale, renderer=collection_renderer(renderer, out),
                   render_terminal=False)
    start = time.perf_counter()
    new = rejected = 0
    try:
        settings = observation_settings(env, split, camera_scale)
        with EpisodeWriter(out, settings["benchmark_task"], split, image_shape=tuple(settings["image_shape"]),
                           observation=settings) as writer:
            seeds = _seeds(split, writer.completed_seeds() | writer.rejected_seeds())
            results = map_episodes(env, functools.partial(_oracle_episode, split=split), seeds, workers=workers,
                                   address=address)
            bar = tqdm(total=episodes, initial=min(writer.num_episodes, episodes), desc=f"collect {task} [{split}]",
                       unit="ep", disable=not progress)
            with contextlib.closing(results):   # closing drops the workers' episodes still in flight, unrecorded
                while writer.num_episodes < episodes:
                    item = next(results, None)
                    if item is None:
                        raise ValueError(f"the {split} split ran out of seeds before {episodes} successful episodes")
                    seed, (frames, total) = item
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
        env.close()
    return CollectReport(n, new, rejected, time.perf_counter() - start, Path(out))
