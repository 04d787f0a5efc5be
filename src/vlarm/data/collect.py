"""Oracle demonstration collection (CLIPort/Ravens ``demos.py`` protocol).

Seeds follow the split convention (train even, val odd, test odd + 10000; ``vlarm.tasks.attributes.split_seed``);
only episodes whose total reward exceeds 0.99 are kept. Collection is resumable: episodes are written atomically
and seeds already written or rejected are skipped, so a killed run, rerun, ends with exactly N distinct seeds.

Everything that fixes what an observation looks like (task, split, colour map size, camera scale, renderer and
every camera's parameters; ``vlarm.data.info.OBSERVATION_SETTINGS``) is recorded in ``meta/info.json``, and a
resume that asks for other values is refused naming both, so a dataset never mixes observations of two kinds.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from vlarm.data.errors import DatasetError
from vlarm.data.info import INFO_PATH, OPTIONAL_OBSERVATION_FIELDS, DatasetInfo
from vlarm.data.writer import EpisodeWriter
from vlarm.envs import make_env
from vlarm.sim.cameras import RENDERER
from vlarm.tasks import SUCCESS_THRESHOLD, TaskError
from vlarm.tasks.attributes import split_seed

#: The ``vlarm collect`` option that sets each observation setting (the others come from the code).
_FLAGS = {"benchmark_task": "--task", "split": "--split", "camera_scale": "--camera-scale"}


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
        "renderer": RENDERER,
        "cameras": {cam.name: cam.to_dict() for cam in env.cameras},
    }


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _camera_differences(recorded: dict, requested: dict) -> list[tuple[str, Any, Any]]:
    """``(label, recorded, requested)`` per differing camera field, e.g. ``("camera 'front' z_range", ...)``."""
    out = []
    for name in sorted(set(recorded) | set(requested)):
        if name not in recorded or name not in requested:
            out.append((f"camera {name!r}", "present" if name in recorded else "absent",
                        "present" if name in requested else "absent"))
            continue
        for key in sorted(set(recorded[name]) | set(requested[name])):
            if recorded[name].get(key) != requested[name].get(key):
                out.append((f"camera {name!r} {key}", recorded[name].get(key), requested[name].get(key)))
    return out


def check_resume(root: Path, requested: dict[str, Any]) -> None:
    """Refuse to add episodes to ``root`` unless its recorded observation settings equal ``requested``.

    A root without episode files is new (nothing to mix) and always accepted.

    Args:
        root: dataset directory.
        requested: :func:`observation_settings` of this run.

    Raises:
        DatasetError: a setting differs (naming the recorded and the requested value, and the option to pass);
            or ``root`` holds episodes whose settings cannot be verified (``meta/info.json`` missing, unreadable,
            or written before vlarm recorded camera settings).
    """
    root = Path(root)
    if not any(root.glob("data/chunk-*/file-*.parquet")):
        return
    path = root / INFO_PATH
    try:
        info = DatasetInfo.from_json(path)
    except DatasetError as err:
        raise DatasetError(f"{root} holds episodes but {INFO_PATH} cannot be read ({err}), so this run cannot "
                           "verify they were collected with the same camera settings: restore the file, or pass "
                           "a new --out") from None
    diffs = info.observation_differences(requested)
    unknown = [name for name, recorded, _ in diffs if recorded is None and name in OPTIONAL_OBSERVATION_FIELDS]
    if unknown:
        raise DatasetError(f"{root} was collected before vlarm recorded {', '.join(unknown)} in {INFO_PATH}, so this "
                           f"run (camera_scale {requested['camera_scale']}, renderer {requested['renderer']!r}) "
                           "cannot verify its images match; pass a new --out (the dataset itself still loads)")
    if not diffs:
        return
    named = {name for name, _, _ in diffs}
    items = []
    for name, recorded, asked in diffs:
        if name == "cameras":
            if "camera_scale" not in named:  # a scale change already explains every camera's new size
                items.extend(_camera_differences(recorded, asked))
        else:
            items.append((name, recorded, asked))
    flags = [_FLAGS[name] for name in _FLAGS if name in named]
    fix = (f"pass the same {' and '.join(flags)} to resume" if flags
           else "resume with the vlarm version that collected it (these settings are not options)")
    raise DatasetError(f"{root} was collected with {' and '.join(f'{n} {_describe(r)}' for n, r, _ in items)}; "
                       f"this run asks for {' and '.join(_describe(a) for _, _, a in items)}: {fix} or a new --out")


class _CollectionWriter(EpisodeWriter):
    """:class:`EpisodeWriter` that checks a resumed root with :func:`check_resume` (under the writer's lock,
    before any meta file is rewritten) and records the observation settings in every ``meta/info.json`` it
    writes, from the first one on (so a killed collection is still verifiable when rerun)."""

    def __init__(self, root: str | Path, settings: dict[str, Any], **kwargs: Any) -> None:
        self._settings = settings
        super().__init__(root, settings["benchmark_task"], settings["split"],
                         image_shape=tuple(settings["image_shape"]), **kwargs)

    def _check_existing_info(self) -> None:
        check_resume(self.root, self._settings)
        super()._check_existing_info()

    def _info(self) -> DatasetInfo:
        return dataclasses.replace(super()._info(),
                                   **{name: self._settings[name] for name in OPTIONAL_OBSERVATION_FIELDS})


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


def collect(task: str, split: str, episodes: int, out: str | Path, camera_scale: float = 1.0,
            progress: bool = True) -> CollectReport:
    """Collect ``episodes`` successful oracle demonstrations into a LeRobot-style dataset at ``out``.

    Args:
        task: task name (ValueError lists the valid ones if unknown).
        split: ``"train"``, ``"val"`` or ``"test"``.
        episodes: number of successful episodes wanted in the dataset (counting ones already there).
        out: dataset directory (created or resumed).
        camera_scale: camera resolution relative to CLIPort's 480x640 (recorded in ``meta/info.json``).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`CollectReport`.

    Raises:
        ValueError: bad task/split/episodes/camera_scale.
        vlarm.data.DatasetError: ``out`` holds a different or corrupt dataset, one collected with other observation
            settings (camera scale, renderer, cameras, image size, task, split; see :func:`check_resume`), or one
            whose settings cannot be verified.
    """
    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    env = make_env(task, split=split, camera_scale=camera_scale)
    start = time.perf_counter()
    new = rejected = 0
    try:
        writer = _CollectionWriter(out, observation_settings(env, split, camera_scale))
    except BaseException:
        env.close()
        raise
    with writer:
        done_seeds = writer.completed_seeds() | writer.rejected_seeds()
        bar = tqdm(total=episodes, initial=min(writer.num_episodes, episodes), desc=f"collect {task} [{split}]",
                   unit="ep", disable=not progress)
        index = 0
        while writer.num_episodes < episodes:
            seed = split_seed(split, index)
            index += 1
            if seed in done_seeds:
                continue
            frames, total = run_oracle_episode(env, seed, split)
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
    env.close()
    return CollectReport(n, new, rejected, time.perf_counter() - start, Path(out))
