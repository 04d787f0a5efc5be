"""Multi-task training (issue 8, item 4): one policy on several task datasets, CLIPort's multi-task protocol.

Datasets are written with ``EpisodeWriter`` from synthetic frames (tiny images, a hand-written camera record), so no
episode is simulated; training runs a few steps of a tiny CLIPort.
"""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vlarm.data import EpisodeDataset, EpisodeWriter
from vlarm.data.multitask import MultiTaskDataset, pool_task_stats, resolve_task_dirs
from vlarm.policies import load_policy
from vlarm.policies.training import TrainConfig, train

from .conftest import TINY_SHAPE, FakeEpisodeDataset, make_frame, tiny_overrides

SEEN, UNSEEN = "put-block-in-bowl-seen-colors", "put-block-in-bowl-unseen-colors"
PIXELS = [((10, 8), (50, 24)), ((20, 20), (40, 10)), ((30, 6), (12, 25)), ((44, 16), (14, 16))]


def _settings(task, camera_scale=0.25, shape=TINY_SHAPE):
    """Observation settings as `vlarm collect` records them (one camera, sized by the scale)."""
    size = [int(480 * camera_scale), int(640 * camera_scale)]
    camera = {"image_size": size, "focal_length": 450.0 * camera_scale, "position": [1.0, 0.0, 0.75],
              "rotation": [0.0, 3.14, -1.57], "z_range": [0.01, 10.0]}
    return {"benchmark_task": task, "split": "train", "image_shape": list(shape), "camera_scale": camera_scale,
            "renderer": "tiny", "cameras": {"front": camera}}


def _episode(seed, steps, background, shape=TINY_SHAPE):
    """``steps`` synthetic pick-and-place frames (different pixels per step) on a background grey level."""
    frames = []
    for t in range(steps):
        pick, place = PIXELS[(seed + t) % len(PIXELS)]
        frame = make_frame(pick, place, yaw=0.5 * t, instruction=f"put the red blocks in a blue bowl {seed}")
        frame["colormap"][frame["colormap"] == 30] = background
        frame["heightmap"] += 0.001 * seed
        if shape != TINY_SHAPE:
            frame["colormap"], frame["heightmap"] = frame["colormap"][: shape[0]], frame["heightmap"][: shape[0]]
        frames.append({**frame, "state": np.zeros(7, np.float32), "reward": 1.0 / steps, "done": t == steps - 1})
    return frames


def _dataset(root, task, episodes=3, steps=1, background=30, **settings):
    """A train-split dataset of ``episodes`` episodes of ``steps`` frames each, as `vlarm collect` records it."""
    obs = _settings(task, **settings)
    with EpisodeWriter(root, task, "train", image_shape=tuple(obs["image_shape"]), meta_interval_s=0,
                       observation=obs) as writer:
        for seed in range(episodes):
            writer.add_episode(_episode(seed, steps, background, tuple(obs["image_shape"])), seed=2 * seed,
                               total_reward=1.0)
    return root


@pytest.fixture
def two_tasks(tmp_path):
    """Seen-colours: 3 one-step episodes on a dark table; unseen-colours: 3 three-step episodes on a light one."""
    return (_dataset(tmp_path / "data" / SEEN, SEEN, steps=1, background=30),
            _dataset(tmp_path / "data" / UNSEEN, UNSEEN, steps=3, background=90))


def _config(out, steps, **kw):
    return TrainConfig(policy="cliport", steps=steps, batch_size=2, lr=1e-3, out_dir=out, save_every=2, log_every=1,
                       seed=0, progress=False, threads=1, policy_overrides=tiny_overrides("cliport"), **kw)


# ---------------------------------------------------------------------------------------------- sampling
def _fake(frames_per_episode, episodes, instruction):
    return FakeEpisodeDataset([[make_frame(instruction=instruction)] * frames_per_episode for _ in range(episodes)])


def test_sampling_is_balanced_across_tasks_then_uniform_within_each():
    """Task A has 2 frames, task B 12: frame-uniform sampling would give A 1/7 of the draws, balanced gives 1/2."""
    data = MultiTaskDataset([_fake(1, 2, "a"), _fake(3, 4, "b")], ["task-a", "task-b"])
    n = 8000
    idx = data.sample_frames(np.random.default_rng(0), n)
    assert idx.shape == (n,) and idx.min() >= 0 and idx.max() < len(data) == 14
    counts = np.bincount(idx, minlength=len(data))
    tolerance = lambda p: 4.5 * np.sqrt(n * p * (1 - p))  # noqa: E731 - 4.5 binomial standard deviations
    in_a = counts[:2].sum()
    assert abs(in_a - n / 2) < tolerance(0.5), in_a
    assert abs(n * 2 / 14 - n / 2) > 3 * tolerance(0.5)  # the test tells balanced from frame-uniform sampling
    for frame, p in zip(range(14), [1 / 4] * 2 + [1 / 24] * 12, strict=True):
        assert abs(counts[frame] - n * p) < tolerance(p), (frame, counts[frame], n * p)
    assert [data[int(i)]["instruction"] for i in (0, 1, 2, 13)] == ["a", "a", "b", "b"]
    assert data[2]["task"] == "task-b" and data[-1]["task"] == "task-b"


def test_demos_are_per_task(two_tasks):
    data = MultiTaskDataset.open([SEEN, UNSEEN], list(two_tasks)).select_episodes(2)
    assert [ds.num_episodes for ds in data.datasets] == [2, 2] and len(data) == 2 * 1 + 2 * 3
    assert data.episodes_per_task == 2 and data.num_episodes == 4


# ---------------------------------------------------------------------------------------------- statistics
def _mixture_by_hand(roots):
    """Per-pixel weights 1 / (K * pixels of the task): the equal-weight mixture of the tasks' frames."""
    colours, heights, weights = [], [], []
    for root in roots:
        ds = EpisodeDataset(root)
        c = np.stack([ds[i]["colormap"] for i in range(len(ds))]).reshape(-1, 3) / 255.0
        h = np.stack([ds[i]["heightmap"] for i in range(len(ds))]).reshape(-1).astype(np.float64)
        colours.append(c), heights.append(h), weights.append(np.full(len(h), 1.0 / (len(roots) * len(h))))
    c, h, w = np.concatenate(colours), np.concatenate(heights), np.concatenate(weights)
    c_mean = np.average(c, axis=0, weights=w)
    h_mean = np.average(h, weights=w)
    return {"color_mean": c_mean, "color_std": np.sqrt(np.average((c - c_mean) ** 2, axis=0, weights=w)),
            "depth_mean": h_mean, "depth_std": np.sqrt(np.average((h - h_mean) ** 2, weights=w)),
            "frame_weighted_color_mean": c.mean(0), "frames": sum(len(EpisodeDataset(r)) for r in roots)}


def test_pooled_stats_are_the_equal_weight_mixture(two_tasks):
    want = _mixture_by_hand(two_tasks)
    stats = MultiTaskDataset.open([SEEN, UNSEEN], list(two_tasks)).stats
    color, height = stats["observation.images.color"], stats["observation.heightmap"]
    np.testing.assert_allclose(np.ravel(color["mean"]), want["color_mean"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.ravel(color["std"]), want["color_std"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(height["mean"], [want["depth_mean"]], rtol=1e-6)
    np.testing.assert_allclose(height["std"], [want["depth_std"]], rtol=1e-6)
    assert color["count"] == [want["frames"]] and not any(k.startswith("q") for k in color)
    # the tasks have 3 and 9 frames: weighting by frames would give another mean
    assert np.abs(want["frame_weighted_color_mean"] - want["color_mean"]).max() > 0.02
    # pooling one task's stats with itself changes nothing
    one = EpisodeDataset(two_tasks[0]).stats
    np.testing.assert_allclose(pool_task_stats([one, one])["observation.images.color"]["std"],
                               one["observation.images.color"]["std"], rtol=1e-12)


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(("change", "fragment"), [
    ({"camera_scale": 0.5}, "camera_scale 0.25 in {a} but 0.5 in {b}"),
    ({"shape": (32, 32)}, "image_shape [64, 32] in {a} but [32, 32] in {b}"),
])
def test_mismatched_observation_settings_are_refused(tmp_path, change, fragment):
    a = _dataset(tmp_path / "a", SEEN)
    b = _dataset(tmp_path / "b", UNSEEN, **change)
    with pytest.raises(ValueError) as err:
        MultiTaskDataset.open([SEEN, UNSEEN], [a, b])
    assert fragment.format(a=a, b=b) in str(err.value), str(err.value)
    with pytest.raises(ValueError, match="other observation settings"):
        train(_config(tmp_path / "run", 1, tasks=[SEEN, UNSEEN], data_dir=[a, b]))
    assert not (tmp_path / "run").exists()


def test_a_dataset_of_another_task_is_refused(two_tasks):
    seen, unseen = two_tasks
    with pytest.raises(ValueError, match=f"holds demonstrations of '{UNSEEN}', not 'put-block-in-bowl-full'"):
        MultiTaskDataset.open([SEEN, "put-block-in-bowl-full"], [seen, unseen])
    with pytest.raises(ValueError, match="named more than once"):
        MultiTaskDataset.open([SEEN, SEEN], [seen, seen])


def test_task_directories(two_tasks, tmp_path):
    seen, unseen = two_tasks
    assert resolve_task_dirs([SEEN, UNSEEN], [tmp_path / "data"]) == [seen, unseen]
    assert resolve_task_dirs([UNSEEN, SEEN], [unseen, tmp_path / "data"]) == [unseen, seen]
    with pytest.raises(ValueError, match="has no sub-folder put-block-in-bowl-full"):
        resolve_task_dirs([SEEN, "put-block-in-bowl-full"], [tmp_path / "data"])
    with pytest.raises(ValueError, match="3 dataset directories for 2 tasks"):
        resolve_task_dirs([SEEN, UNSEEN], [seen, unseen, seen])


# ---------------------------------------------------------------------------------------------- training
def test_training_records_tasks_pools_stats_and_resumes(two_tasks, tmp_path, monkeypatch):
    draws, sample = [], MultiTaskDataset.sample_frames

    def spy(self, rng, n):
        idx = sample(self, rng, n)
        draws.append([self.task_index(int(i)) for i in idx])
        return idx

    monkeypatch.setattr(MultiTaskDataset, "sample_frames", spy)
    config = _config(tmp_path / "run", 2, tasks=[SEEN, UNSEEN], data_dir=[tmp_path / "data"], demos=2)
    last = train(config)
    policy = load_policy(last)
    assert policy.config.tasks == (SEEN, UNSEEN)
    assert len(draws) == 2  # every step's frames came from the balanced sampler
    hand = _mixture_by_hand(two_tasks)
    np.testing.assert_allclose(policy.config.color_mean, hand["color_mean"], rtol=1e-9)
    np.testing.assert_allclose(policy.config.depth_std, hand["depth_std"], rtol=1e-6)
    state = json.loads((last / "training_state.json").read_text())
    assert state["train_config"]["tasks"] == [SEEN, UNSEEN] and state["train_config"]["task"] == "multi"

    last = train(dataclasses_replace(config, steps=4))  # resume: steps 3 and 4
    rows = list(csv.DictReader((tmp_path / "run/train_log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and len(draws) == 4
    assert json.loads((last / "training_state.json").read_text())["step"] == 4
    fresh = train(dataclasses_replace(config, steps=4, out_dir=tmp_path / "fresh"))
    a, b = load_file(str(last / "model.safetensors")), load_file(str(fresh / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key])  # 2 + 2 resumed steps = 4 uninterrupted ones
    with pytest.raises(ValueError, match="tasks: \\['put-block-in-bowl-seen-colors', 'put-block-in-bowl-unseen"):
        train(dataclasses_replace(config, steps=6, tasks=[UNSEEN, SEEN]))


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def test_config_validation():
    with pytest.raises(ValueError, match="two or more different tasks"):
        TrainConfig(tasks=[SEEN])
    with pytest.raises(ValueError, match="pass either task="):
        TrainConfig(task=SEEN, tasks=[SEEN, UNSEEN])
    with pytest.raises(ValueError, match="needs the list of tasks"):
        TrainConfig(task="multi")
    assert TrainConfig(tasks=[SEEN, UNSEEN]).task == "multi"


def test_single_task_training_records_its_task(tmp_path, fake_dataset):
    last = train(_config(tmp_path / "run", 1, task=SEEN), dataset=fake_dataset)
    assert load_policy(last).config.tasks == (SEEN,)


# ---------------------------------------------------------------------------------------------- evaluation
class _TrainedOn:
    """The oracle, dressed as a policy whose config records the tasks it was trained on."""

    def __init__(self, env, tasks):
        from types import SimpleNamespace

        from vlarm.eval import OracleAgent

        self.oracle, self.config = OracleAgent(env), SimpleNamespace(tasks=tasks)

    def select_action(self, observation, instruction=None):
        return self.oracle.select_action(observation, instruction)


def test_evaluating_outside_the_training_tasks_warns_and_runs(caplog):
    from vlarm.eval import evaluate
    from vlarm.eval.rollout import _warn_untrained_task

    _warn_untrained_task.cache_clear()
    with caplog.at_level(logging.WARNING, logger="vlarm.eval.rollout"):
        inside = evaluate(lambda env: _TrainedOn(env, (SEEN, UNSEEN)), UNSEEN, "val", 1, camera_scale=0.25,
                          progress=False)
        held_out = evaluate(lambda env: _TrainedOn(env, (SEEN,)), UNSEEN, "val", 1, camera_scale=0.25,
                            progress=False)           # another variant of its family: its own generalisation test
        assert not caplog.records
        outside = evaluate(lambda env: _TrainedOn(env, (SEEN,)), "packing-shapes", "val", 1, camera_scale=0.25,
                           progress=False)
    assert [r.getMessage() for r in caplog.records] == [
        f"the policy was trained on {SEEN}, not on the packing-shapes family: this evaluation measures "
        "generalisation outside its training tasks"]
    assert inside["episodes"] == held_out["episodes"] == outside["episodes"] == 1


# ---------------------------------------------------------------------------------------------- command line
@pytest.fixture
def captured(monkeypatch):
    """Stand-in for the training loop: records the TrainConfig the command builds."""
    import vlarm.policies.training

    configs = []
    monkeypatch.setattr(vlarm.policies.training, "train", lambda config: configs.append(config) or "last")
    return configs


def test_train_command_builds_multi_task_runs(two_tasks, tmp_path, monkeypatch, captured):
    from vlarm.cli.main import app

    runner = CliRunner()
    seen, unseen = two_tasks
    monkeypatch.chdir(tmp_path)
    cases = [
        (["--task", SEEN, "--task", UNSEEN, "--data", str(seen), "--data", str(unseen)], [SEEN, UNSEEN]),
        (["--task", UNSEEN, "--task", SEEN, "--data", str(tmp_path / "data")], [UNSEEN, SEEN]),
        (["--task", "multi", "--data", str(tmp_path / "data")], [SEEN, UNSEEN]),
        (["--task", "multi", "--data", str(unseen), "--data", str(seen)], [UNSEEN, SEEN]),
    ]
    for args, tasks in cases:
        result = runner.invoke(app, ["train", "--policy", "cliport", *args, "--demos", "2"])
        assert result.exit_code == 0, result.output
        config = captured[-1]
        assert config.tasks == tasks and config.task == "multi" and config.demos == 2
        assert str(config.out_dir) == "runs/cliport-multi-2"
    result = runner.invoke(app, ["train", "--policy", "cliport", "--task", SEEN, "--data", str(seen)])
    assert result.exit_code == 0, result.output
    assert captured[-1].task == SEEN and captured[-1].tasks == [] and captured[-1].data_dir == seen
    assert str(captured[-1].out_dir) == f"runs/cliport-{SEEN}-100"


@pytest.mark.parametrize(("args", "message"), [
    (["--task", SEEN, "--task", UNSEEN, "--data", "{seen}"], "has no sub-folder"),
    (["--task", SEEN, "--data", "{seen}", "--data", "{unseen}"], "2 --data directories for one --task"),
    (["--task", "multi", "--task", SEEN, "--data", "{seen}"], "pass it alone"),
    (["--task", "multi", "--data", "{seen}"], "at least two tasks"),
    (["--task", UNSEEN, "--task", SEEN, "--data", "{seen}", "--data", "{unseen}"],
     f"holds demonstrations of '{SEEN}', not '{UNSEEN}'"),
    (["--task", SEEN, "--task", "nope", "--data", "{seen}"], "nope"),
])
def test_train_command_refusals(two_tasks, captured, args, message):
    from vlarm.cli.main import app

    seen, unseen = two_tasks
    args = [a.format(seen=seen, unseen=unseen) for a in args]
    result = CliRunner().invoke(app, ["train", "--policy", "cliport", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert not captured
