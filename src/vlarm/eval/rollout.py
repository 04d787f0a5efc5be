"""Policy rollouts and the CLIPort evaluation protocol (Shridhar et al. CoRL 2021, Sec. 4.2).

Score = mean total reward over the episodes, times 100 (partial credit counts); success rate = share of episodes
with total reward > 0.99 in the final state, in percent. Each comes with its 95% interval and the episode count
(:mod:`vlarm.stats`), pooled and split by how many of an episode's goal attributes are novel (outside the
training vocabulary: all / some / none), so that an "unseen" score is not read as a novel-attribute score when it
mixes in seen colours. Seeds are the split's seeds (``split_seed``).

Episodes can run on Ray workers (``evaluate(..., workers=N, address=...)``, :mod:`vlarm.parallel`): each worker
builds its own env and its own agent (from a picklable factory such as :class:`OracleAgent` or
:class:`CheckpointAgentFactory`), and results are gathered in seed order, so the per-episode results are those of
one worker.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from vlarm.envs import make_env
from vlarm.envs.tabletop import TabletopEnv
from vlarm.parallel import check_workers, init_ray, map_episodes, uses_ray
from vlarm.policies.base import agent_env_options, env_options_at_scale, policy_env_options, resolve_device
from vlarm.sim.video import VideoRecorder, VideoWriteError
from vlarm.stats import format_ci, score_summary
from vlarm.tasks import SUCCESS_THRESHOLD, TaskError, list_tasks, task_family
from vlarm.tasks.attributes import NOVELTY_CLASSES, check_episode_count, split_seed

logger = logging.getLogger(__name__)


class Agent(Protocol):
    """Anything with ``select_action(observation, instruction) -> {"pick_pose", "place_pose"}``."""

    def select_action(self, observation: dict, instruction: str | None = None) -> dict: ...


class OracleAgent:
    """The task's scripted oracle, evaluated like any policy (needs the env it acts in)."""

    def __init__(self, env: TabletopEnv):
        self.env = env

    def reset(self) -> None:
        """No state."""

    def select_action(self, observation: dict, instruction: str | None = None) -> dict:
        """The oracle action for the env's current state."""
        return self.env.oracle_action()


def factory_env_options(agent_factory) -> dict:
    """The env arguments for the agents ``agent_factory(env)`` builds: its own ``env_options`` when it has them
    (:class:`CheckpointAgentFactory`), ``{}`` for an agent class (the oracle), else those of the agent a closure
    returns for ``env=None`` (a loaded policy: the CLI, ``vlarm select``)."""
    options = getattr(agent_factory, "env_options", None)
    if options is not None:
        return options
    return {} if isinstance(agent_factory, type) else agent_env_options(agent_factory(None))


@dataclass(frozen=True)
class CheckpointAgentFactory:
    """A picklable agent factory: ``factory(env)`` loads the policy checkpoint at ``path`` (in eval mode).

    Evaluation workers call it in their own process (:func:`evaluate` with ``workers > 1``), so each builds its own
    copy from the path instead of receiving the weights through Ray.

    Raises (when called):
        vlarm.policies.base.CheckpointError: missing or corrupt checkpoint.
    """

    path: str

    @property
    def env_options(self) -> dict:
        """Env arguments the checkpoint's policy needs (:func:`policy_env_options` of its ``config.json``)."""
        return policy_env_options(json.loads((Path(self.path) / "config.json").read_text()))

    def __call__(self, env):
        from vlarm.policies import load_policy

        agent = load_policy(self.path)
        agent.eval()
        return agent


@dataclass(frozen=True)
class _AgentSetup:
    """Build the agent for an env where the episodes run: a torch policy goes to ``device``, and a policy trained on
    other task families than ``task``'s is logged once (:func:`_warn_untrained_task`)."""

    factory: object
    device: str
    task: str

    def __call__(self, env):
        agent = self.factory(env)
        if isinstance(agent, torch.nn.Module):
            agent.to(resolve_device(self.device))
        _check_trained_tasks(agent, self.task)
        return agent


def _check_trained_tasks(agent, task: str) -> None:
    trained = agent_trained_tasks(agent)
    if trained and untrained_family(trained, task):
        _warn_untrained_task(trained, task)


def agent_trained_tasks(agent) -> tuple[str, ...]:
    """The tasks a policy records in its config (empty for agents without one, e.g. the oracle)."""
    return tuple(getattr(getattr(agent, "config", None), "tasks", ()) or ())


def untrained_family(trained: tuple[str, ...], task: str) -> bool:
    """Whether ``task``'s family is none of the ``trained`` tasks' families (another variant of a trained family,
    e.g. its held-out colours, is the family's own generalisation test, not a task outside training)."""
    known = set(list_tasks())
    families = {task_family(t) if t in known else t for t in trained}
    return task_family(task) not in families


@dataclass
class StepRecord:
    """One pick-and-place of a rollout (poses: xyz metres + quaternion xyzw)."""

    pick_pose: list[float]
    place_pose: list[float]
    reward: float
    total_reward: float
    primitive_failure: str | None
    seconds_select_action: float
    #: the instruction the agent acted on (sequential tasks: this step's own instruction).
    instruction: str = ""


@dataclass
class EpisodeRecord:
    """One evaluated episode."""

    seed: int
    instruction: str
    total_reward: float
    success: bool
    steps: list[StepRecord] = field(default_factory=list)
    video: str | None = None
    video_error: str | None = None
    goal_attributes: dict = field(default_factory=dict)
    novelty: str = "none"


def rollout(env: TabletopEnv, agent, seed: int, split: str, instruction: str | None = None,
            video_path: str | Path | None = None, on_step=None) -> EpisodeRecord:
    """Run one episode.

    Args:
        env: the environment.
        agent: an :class:`Agent` (a ``Policy`` or :class:`OracleAgent`).
        seed: episode seed.
        split: split for scene sampling.
        instruction: optional free-form instruction the scene must match (grounded by the task).
        video_path: optional ``.mp4``/``.gif`` path for a video of the episode.
        on_step: optional ``callback(step_index, StepRecord, info)`` (for printing progress).

    Returns:
        An :class:`EpisodeRecord`. A video that cannot be written does not lose the episode: ``video`` stays None
        and ``video_error`` holds the one-line reason.
    """
    options = {"split": split}
    if instruction:
        options["instruction"] = instruction
    recorder = None
    if video_path is not None:
        recorder = VideoRecorder(env.cameras[0])
        env.scene.frame_callback = None
    obs, info = env.reset(seed=seed, options=options)
    if recorder is not None:
        recorder.caption = info["instruction"]
        recorder(env.scene)
        env.scene.frame_callback = recorder
    if hasattr(agent, "reset"):
        agent.reset()
    record = EpisodeRecord(seed=seed, instruction=info["instruction"], total_reward=0.0, success=False,
                           goal_attributes=info.get("goal_attributes", {}), novelty=info.get("novelty", "none"))
    done = False
    try:
        while not done:
            t0 = time.perf_counter()
            try:
                step_instruction = obs["instruction"]
                action = agent.select_action(obs, step_instruction)
            except TaskError:
                break
            dt = time.perf_counter() - t0
            obs, reward, terminated, truncated, step_info = env.step(action)
            if recorder is not None:
                recorder.caption = env.instruction   # a sequential task's next step
            done = terminated or truncated
            closed_loop = "pick_pose" not in action     # an ee_delta control step: no poses, no primitive
            step = StepRecord([] if closed_loop else np.asarray(action["pick_pose"], float).round(4).tolist(),
                              [] if closed_loop else np.asarray(action["place_pose"], float).round(4).tolist(),
                              float(reward), float(step_info["total_reward"]), step_info.get("primitive_failure"), dt,
                              step_instruction)
            record.steps.append(step)
            record.total_reward = float(step_info["total_reward"])
            if on_step is not None:
                on_step(len(record.steps) - 1, step, step_info)
    finally:
        env.scene.frame_callback = None
    record.success = record.total_reward > SUCCESS_THRESHOLD
    if recorder is not None:
        for _ in range(5):
            recorder(env.scene)
        try:
            record.video = str(recorder.write(video_path))
        except VideoWriteError as err:
            record.video_error = str(err)
    return record


def summarize(records: list[EpisodeRecord]) -> dict:
    """Aggregate metrics with 95% intervals (:func:`vlarm.stats.score_summary`).

    Returns:
        ``score``, ``score_ci``, ``success_rate``, ``success_ci`` (0-100), ``episodes``, ``mean_steps``,
        ``select_action_ms_mean`` and ``by_novelty``: the same five figures for the episodes whose goal
        attributes are ``"all"``, ``"some"`` or ``"none"`` novel.
    """
    latencies = [s.seconds_select_action for r in records for s in r.steps]
    pooled = score_summary([r.total_reward for r in records], [r.success for r in records])
    by_novelty = {}
    for cls in NOVELTY_CLASSES:
        part = [r for r in records if r.novelty == cls]
        by_novelty[cls] = score_summary([r.total_reward for r in part], [r.success for r in part])
    return {
        **pooled,
        "mean_steps": float(np.mean([len(r.steps) for r in records])) if records else 0.0,
        "select_action_ms_mean": float(1000 * np.mean(latencies)) if latencies else None,
        "by_novelty": by_novelty,
    }


def _running(records: list[EpisodeRecord]) -> tuple[float, float]:
    rewards = [r.total_reward for r in records]
    return 100 * float(np.mean(rewards)), 100 * float(np.mean([r.success for r in records]))


def _evaluation_episode(env: TabletopEnv, agent, seed: int, split: str, video_dir: str | None,
                        video_seeds: frozenset[int], ship_video: bool) -> tuple[EpisodeRecord, bytes | None]:
    """One :func:`evaluate` episode (a :func:`vlarm.parallel.map_episodes` episode function).

    Returns:
        ``(record, video bytes)``. A worker (``ship_video``) may run on another machine, so it writes its video to a
        temporary file and returns the bytes for the caller to write; in-process the video goes straight to
        ``video_dir`` and the bytes are None.
    """
    if video_dir is None or seed not in video_seeds:
        return rollout(env, agent, seed, split), None
    name = f"episode_{seed}.mp4"
    if not ship_video:
        return rollout(env, agent, seed, split, video_path=Path(video_dir) / name), None
    with tempfile.TemporaryDirectory(prefix="vlarm-video-") as tmp:
        record = rollout(env, agent, seed, split, video_path=Path(tmp) / name)
        data = Path(record.video).read_bytes() if record.video else None
    record.video = None
    return record, data


def _save_video(record: EpisodeRecord, data: bytes, path: Path) -> None:
    """Write a worker's video bytes to ``path``; a failed write is the record's ``video_error``, as in-process."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        record.video = str(path)
    except OSError as err:
        record.video_error = f"could not write the video {path}: {err.strerror or err}"


def _gpus_per_worker(device: str, workers: int, address: str | None) -> float:
    """GPUs each Ray worker reserves: a share of the cluster's GPUs unless ``device`` is cpu (Ray hides GPUs from
    workers that reserve none). ValueError for ``device="cuda"`` on a cluster without GPUs."""
    if device == "cpu":
        return 0.0
    total = init_ray(workers, address).cluster_resources().get("GPU", 0.0)
    if not total and device == "cuda":
        raise ValueError("--device cuda: the Ray cluster has no GPU; use --device auto or cpu")
    return min(1.0, total / workers)


def evaluate(agent_factory, task: str, split: str = "test", episodes: int = 100, out_dir: str | Path | None = None,
             videos: int = 0, camera_scale: float | None = None, progress: bool = True, label: str = "",
             device: str = "auto", workers: int = 1, address: str | None = None,
             env_options: dict | None = None, trained_tasks: tuple[str, ...] = ()) -> dict:
    """Evaluate an agent on ``episodes`` seeded episodes of a task (CLIPort protocol).

    Args:
        agent_factory: ``callable(env) -> agent`` (lets the oracle bind to the env). With workers it is called in
            each worker and must be picklable: :class:`OracleAgent`, :class:`CheckpointAgentFactory`, or any
            function Ray's cloudpickle can ship (a closure over a loaded policy ships its weights).
        task: task name.
        split: ``"val"`` or ``"test"`` normally.
        episodes: number of episodes (seeds ``split_seed(split, 0..episodes-1)``).
        out_dir: if given, write ``results.json`` (summary + per-episode rows) and ``results.md``.
        videos: record the first ``videos`` episodes to ``out_dir/videos/episode_<seed>.mp4``.
        camera_scale: camera resolution relative to 480x640; None: the scale the policy learned from (1.0 when it
            records none, and for the oracle). Another scale than the policy's is allowed and warned about
            (:func:`vlarm.policies.base.env_options_at_scale`); the results record the scale used.
        progress: tqdm progress bar.
        label: name of the agent for reports.
        trained_tasks: the tasks the policy was trained on, recorded in the results (empty: unknown, or the oracle).
        device: where a torch policy runs (``vlarm.policies.resolve_device``: auto, cpu, cuda); Ray workers
            reserve a share of the cluster's GPUs unless it is cpu.
        workers: Ray workers running episodes, each with its own env and agent (1: in this process, no Ray).
            Results are gathered in seed order, so the per-episode rows are those of one worker (timings aside; a
            torch policy also needs the same device and thread count, ``OMP_NUM_THREADS``, for bitwise-equal
            actions).
        address: a Ray cluster for the workers (:mod:`vlarm.parallel`); None: local Ray when ``workers > 1``.
        env_options: extra :func:`vlarm.envs.make_env` arguments, e.g. ``{"action_mode": "ee_delta",
            "image_scale": 0.2}`` for a closed-loop agent (an episode that never terminates is cut at the env's
            step limit and scored on its final state, like any other); None: the factory's own ``env_options``
            (:class:`CheckpointAgentFactory`) or none.

    Returns:
        The results dict: summary metrics plus ``episodes`` rows.

    Raises:
        ValueError: unknown task/split, ``episodes <= 0``, more val episodes than the split has (5000), bad
            ``workers``, or an unreachable ``address``.
    """
    if episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {episodes}")
    check_workers(workers)
    check_episode_count(split, episodes)
    if env_options is None:
        env_options = factory_env_options(agent_factory)
    policy_camera_scale = env_options.get("camera_scale")   # the scale the policy learned from, when it records one
    env_options = env_options_at_scale(env_options, camera_scale)
    camera_scale = env_options["camera_scale"]
    env = make_env(task, split=split, render_terminal=False, **env_options)   # nothing looks at the terminal frame
    out = Path(out_dir) if out_dir is not None else None
    seeds = [split_seed(split, i) for i in range(episodes)]
    ship = uses_ray(workers, address)
    episode = functools.partial(_evaluation_episode, split=split, video_dir=str(out / "videos") if out else None,
                                video_seeds=frozenset(seeds[:videos]), ship_video=ship)
    records: list[EpisodeRecord] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        gpus = 0.0
        if ship:   # workers log nowhere: check the agent here (a bad factory also fails before Ray starts)
            _check_trained_tasks(agent_factory(env), task)
            gpus = _gpus_per_worker(device, workers, address)
        results = map_episodes(env, episode, seeds, setup=_AgentSetup(agent_factory, device, task), workers=workers,
                               address=address, gpus_per_worker=gpus)
        bar = tqdm(total=episodes, desc=f"eval {label or 'agent'} on {task} [{split}]", unit="ep",
                   disable=not progress)
        with contextlib.closing(results):
            for seed, (record, video) in results:
                if video is not None:
                    _save_video(record, video, out / "videos" / f"episode_{seed}.mp4")
                records.append(record)
                score, success = _running(records)
                bar.update(1)
                bar.set_postfix(score=f"{score:.1f}", success=f"{success:.0f}%")
        bar.close()
    finally:
        env.close()
    results = {"agent": label, "task": task, "trained_tasks": list(trained_tasks), "split": split,
               "camera_scale": camera_scale, "policy_camera_scale": policy_camera_scale, **summarize(records),
               "seconds": time.perf_counter() - start,
               "cpu_seconds": time.process_time() - cpu_start,   # this process's threads (Ray workers not counted)
               "units": {"score": "mean total reward x 100 (final state)",
                         "success_rate": "percent of episodes with final total reward > 0.99",
                         "score_ci": "95% percentile bootstrap over episodes",
                         "success_ci": "95% Wilson interval",
                         "by_novelty": "episodes whose goal attributes are all / some / none novel (outside the "
                                       "training vocabulary)"},
               "per_episode": [asdict(r) for r in records]}
    if out is not None:
        write_results(results, out)
    return results


@functools.cache
def _warn_untrained_task(trained: tuple[str, ...], task: str) -> None:
    """Log once per process that a policy trained on ``trained`` is evaluated on a task of another family.

    Not refused: a language-conditioned policy may be asked to generalise to a family it never saw; the result
    then measures that, not the trained skill.
    """
    logger.warning("the policy was trained on %s, not on the %s family: this evaluation measures generalisation "
                   "outside its training tasks", ", ".join(trained), task_family(task))


def read_results(out_dir: str | Path, **wanted) -> dict | None:
    """The ``results.json`` that :func:`write_results` left in ``out_dir``, if it was made with ``wanted`` settings
    (e.g. ``split="val", episodes=50``: every given key must hold the given value); None when there is none, it is
    not valid JSON, or a setting differs (so the caller evaluates again instead of reusing stale results)."""
    try:
        results = json.loads((Path(out_dir) / "results.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(results, dict) or any(results.get(k) != v for k, v in wanted.items()):
        return None
    return results


def write_results(results: dict, out_dir: str | Path) -> None:
    """Write ``results.json`` and a Markdown report ``results.md`` (summary with intervals, novelty breakdown,
    per-episode rows) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(results_markdown(results))


def summary_rows(results: dict) -> list[tuple[str, dict]]:
    """``(name, figures)`` of the pooled summary and of each non-empty novelty class, for any report."""
    return [("pooled", results)] + [(k, v) for k, v in results.get("by_novelty", {}).items() if v["episodes"]]


def results_markdown(results: dict) -> str:
    """The Markdown report of :func:`evaluate`'s results: pooled and per-novelty rows, then one row per episode."""
    lines = [f"# {results['agent']} on {results['task']} ({results['split']})", "",
             "Score = mean total reward x 100; success = final total reward > 0.99; brackets: 95% interval "
             "(bootstrap for the score, Wilson for success).", ""]
    if results.get("trained_tasks"):
        lines += [f"Policy trained on: {', '.join(results['trained_tasks'])}.", ""]
    if results.get("camera_scale") is not None:
        own = results.get("policy_camera_scale")
        other = f" (the policy learned from {own:g}: a robustness test)" \
            if own is not None and not math.isclose(own, results["camera_scale"]) else ""
        lines += [f"Cameras at {results['camera_scale']:g} x 480x640{other}.", ""]
    lines += ["| episodes | goal attributes novel | score | success rate (%) |", "|---:|---|---:|---:|"]
    for name, part in summary_rows(results):
        lines.append(f"| {part['episodes']} | {name} | {format_ci(part['score'], part['score_ci'])} | "
                     f"{format_ci(part['success_rate'], part['success_ci'])} |")
    lines += ["", f"Mean steps {results['mean_steps']:.2f}.", "",
              "| seed | instruction | novel | reward | success | steps |", "|---:|---|---|---:|:---:|---:|"]
    for r in results["per_episode"]:
        lines.append(f"| {r['seed']} | {r['instruction']} | {r.get('novelty', '-')} | {r['total_reward']:.2f} | "
                     f"{'yes' if r['success'] else 'no'} | {len(r['steps'])} |")
    return "\n".join(lines) + "\n"
