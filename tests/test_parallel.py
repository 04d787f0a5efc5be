"""Ray-parallel collection and evaluation (issue 8 part 3): picklable scenes/envs, results in seed order, and 1 vs 2
workers giving byte-identical datasets and identical per-episode evaluation results."""

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ray import cloudpickle

from vlarm import parallel
from vlarm.data.collect import collect
from vlarm.envs import make_env
from vlarm.eval import OracleAgent, evaluate
from vlarm.sim import Scene

TASK = "put-block-in-bowl-seen-colors"
SCALE = 0.25

# Episode functions defined here travel to the workers by value (this test module is not importable there).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def ray_stopped_afterwards():
    """One local Ray for the module (started by the first parallel call), always shut down at the end."""
    yield
    parallel.shutdown()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------- pickling
def test_a_pickled_scene_rebuilds_its_own_client():
    scene = Scene(cameras=make_env(TASK, camera_scale=SCALE).cameras)
    scene.reset()
    copy = pickle.loads(pickle.dumps(scene))
    assert copy.client not in (scene.client, scene.ik_client) and copy.arm is None and copy.objects == {}
    assert copy.renderer == scene.renderer and copy.cameras == scene.cameras
    copy.reset()   # a working simulator of its own
    assert copy.arm is not None and copy.observe().heightmap.shape == scene.observe().heightmap.shape
    scene.close()
    copy.close()


def test_a_pickled_env_is_a_working_env_with_a_new_client():
    env = make_env(TASK, split="val", camera_scale=SCALE, render_terminal=False)
    obs, info = env.reset(seed=7)
    state = env.__getstate__()   # constructor arguments only: no client id, no scene
    assert set(state) == {"task", "split", "camera_scale", "render_mode", "renderer", "render_terminal", "appearance"}
    assert "client" not in env.scene.__getstate__()
    copy = pickle.loads(pickle.dumps(env))
    assert copy.scene.client not in (env.scene.client, env.scene.ik_client)
    assert (copy.split, copy.camera_scale, copy.render_terminal) == ("val", SCALE, False)
    with pytest.raises(RuntimeError, match="reset"):   # the episode is not carried: reset first
        copy.step(env.oracle_action())
    obs2, info2 = copy.reset(seed=7)
    assert info2["instruction"] == info["instruction"]
    for key in ("heightmap", "colormap"):
        assert np.array_equal(obs[key], obs2[key])
    for cam in obs["rgb"]:
        assert np.array_equal(obs["rgb"][cam], obs2["rgb"][cam])
    env.close()
    copy.close()


# ---------------------------------------------------------------------------------------------------- ordering
def _slow_even_seeds(env, state, seed):
    env.reset(seed=seed)
    time.sleep(0.4 if seed % 2 == 0 else 0.0)   # even seeds finish after later odd ones
    return seed, os.getpid(), env.scene.client


def test_results_come_back_in_seed_order_from_every_worker():
    env = make_env(TASK, camera_scale=SCALE)
    seeds = [4, 1, 2, 9, 6, 3]
    results = list(parallel.map_episodes(env, _slow_even_seeds, seeds, workers=2, lookahead=3))
    assert [s for s, _ in results] == seeds and [r[0] for _, r in results] == seeds
    pids = {r[1] for _, r in results}
    assert len(pids) == 2 and os.getpid() not in pids   # two worker processes, each with its own simulator
    env.close()
    # the next call reuses the two processes, each with a new env built from the new arguments
    other = make_env(TASK, split="val", camera_scale=0.3)
    again = list(parallel.map_episodes(other, _describe_env, [5, 6, 7], workers=2))
    assert {r[0] for _, r in again} == pids and {r[1:] for _, r in again} == {("val", 0.3)}
    other.close()


def _describe_env(env, state, seed):
    return os.getpid(), env.split, env.camera_scale


# ---------------------------------------------------------------------------------------------------- collection
def test_one_and_two_workers_write_byte_identical_datasets_and_resume(tmp_path):
    one, two, resumed = tmp_path / "one", tmp_path / "two", tmp_path / "resumed"
    a = collect(TASK, "train", 3, one, camera_scale=SCALE, progress=False)
    b = collect(TASK, "train", 3, two, camera_scale=SCALE, progress=False, workers=2)
    assert a.episodes == b.episodes == 3
    files = _files(one)
    assert sum(name.startswith("data/") for name in files) == 3 and files == _files(two)
    # resumable with workers: a run stopped after 1 episode, resumed with 2 workers, ends with the same bytes
    collect(TASK, "train", 1, resumed, camera_scale=SCALE, progress=False, workers=2)
    c = collect(TASK, "train", 3, resumed, camera_scale=SCALE, progress=False, workers=2)
    assert c.new_episodes == 2 and _files(resumed) == files


def test_collect_without_workers_never_imports_ray(tmp_path):
    code = ("import sys; from typer.testing import CliRunner; from vlarm.cli.main import app; "
            f"r = CliRunner().invoke(app, ['collect', '--task', '{TASK}', '--out', r'{tmp_path / 'ds'}', "
            f"'--episodes', '1', '--camera-scale', '{SCALE}']); "
            "assert r.exit_code == 0, r.output; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


# ---------------------------------------------------------------------------------------------------- evaluation
def _without_timings(results: dict) -> list[dict]:
    rows = []
    for row in results["per_episode"]:
        row = dict(row, steps=[{k: v for k, v in s.items() if k != "seconds_select_action"} for s in row["steps"]])
        row.pop("video")
        rows.append(row)
    return rows


def test_evaluation_with_two_workers_matches_one_worker(tmp_path):
    kwargs = dict(task=TASK, split="val", episodes=4, camera_scale=SCALE, progress=False, label="oracle", videos=1)
    one = evaluate(OracleAgent, out_dir=tmp_path / "one", **kwargs)
    two = evaluate(OracleAgent, out_dir=tmp_path / "two", workers=2, **kwargs)
    assert [r["seed"] for r in two["per_episode"]] == [1, 3, 5, 7]
    assert _without_timings(one) == _without_timings(two)
    assert {k: one[k] for k in ("score", "success_rate", "by_novelty")} == \
        {k: two[k] for k in ("score", "success_rate", "by_novelty")}
    # the worker's video comes back to this machine and lands where a one-worker run puts it
    video = Path(two["per_episode"][0]["video"])
    assert video == tmp_path / "two" / "videos" / "episode_1.mp4" and video.stat().st_size > 1000
    assert two["per_episode"][1]["video"] is None


# ---------------------------------------------------------------------------------------------------- CLI and cluster
def test_cli_eval_with_workers_and_an_unreachable_cluster(tmp_path):
    from typer.testing import CliRunner

    from vlarm.cli.main import app

    args = ["eval", "--policy", "oracle", "--task", TASK, "--split", "val", "--episodes", "2", "--camera-scale",
            str(SCALE)]
    result = CliRunner().invoke(app, [*args, "--workers", "2", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "ev" / "results.json").read_text())["per_episode"]
    assert [r["seed"] for r in rows] == [1, 3] and all(r["success"] for r in rows)

    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["collect", "--task", TASK, "--out", str(tmp_path / "ds"), "--episodes", "1",
                                      "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2 and f"--address 127.0.0.1:{port}: nothing answers" in result.output
    assert time.perf_counter() - start < 15 and not (tmp_path / "ds").exists()   # fast, and no dataset started


def test_an_agent_factory_from_a_checkpoint_path_pickles_as_the_path():
    from vlarm.eval.rollout import CheckpointAgentFactory

    factory = CheckpointAgentFactory("checkpoints/some-policy")
    blob = pickle.dumps(factory)
    assert len(blob) < 200 and pickle.loads(blob) == factory   # no weights travel: each worker loads the path


# ---------------------------------------------------------------------------------------------------- errors
def _fail_on_seed_3(env, state, seed):
    if seed == 3:
        raise ValueError("seed 3 is cursed")
    return seed


def _setup_without_checkpoint(env):
    raise FileNotFoundError("no checkpoint at /nowhere")


def test_worker_errors_come_back_as_their_own_type():
    """(Last in the module: a failure kills the workers, so the tests above reuse theirs.)"""
    env = make_env(TASK, camera_scale=SCALE)
    with pytest.raises(ValueError, match="seed 3 is cursed"):
        list(parallel.map_episodes(env, _fail_on_seed_3, [1, 2, 3, 4], workers=2))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        list(parallel.map_episodes(env, _fail_on_seed_3, [1], workers=2, setup=_setup_without_checkpoint))
    with pytest.raises(ValueError, match="--workers must be an integer >= 1"):
        parallel.map_episodes(env, _fail_on_seed_3, [1], workers=0)
    env.close()
