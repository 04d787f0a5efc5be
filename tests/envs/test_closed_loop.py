"""The closed-loop ee_delta env (vlarm.envs.closed_loop): gymnasium contract, oracle, step limit, refusals."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from vlarm.envs import ee_delta_tasks, ee_env_id, make_env
from vlarm.envs.closed_loop import ClosedLoopEnv, ee_action

TASK = "put-block-in-bowl-seen-colors"


@pytest.fixture(scope="module")
def env():
    e = ClosedLoopEnv(TASK, camera_scale=0.25)
    yield e
    e.close()


def test_passes_the_gymnasium_env_checker(env):
    check_env(env, skip_render_check=True)


def test_registered_ids_and_excluded_families():
    assert ee_env_id(TASK) in gym.registry
    assert not any(t.startswith(("separating-piles", "align-rope")) for t in ee_delta_tasks())
    with pytest.raises(ValueError, match="excluded families"):
        ClosedLoopEnv("separating-piles-seen-colors", camera_scale=0.25)
    with pytest.raises(ValueError, match="action mode"):
        make_env(TASK, action_mode="joint")


def test_oracle_solves_an_episode_and_terminates(env):
    obs, info = env.reset(seed=1, options={"split": "train"})
    assert obs["rgb"].shape == (96, 128, 3) and obs["state"].shape == (8,)
    for _ in range(info["max_control_steps"]):
        obs, reward, terminated, truncated, step_info = env.step(env.oracle_action())
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert step_info["success"] and step_info["total_reward"] > 0.99
    assert env.oracle_action()["terminate"] == 1      # nothing left: the expert's mode token says stop


def test_an_episode_that_never_terminates_is_cut_at_the_step_limit():
    e = ClosedLoopEnv(TASK, camera_scale=0.25, max_control_steps=3)
    try:
        e.reset(seed=0)
        still = ee_action(np.zeros(3), 0.0, False)
        results = [e.step(still) for _ in range(3)]
        assert [r[3] for r in results] == [False, False, True]       # truncated at the limit, not before
        assert results[-1][4]["total_reward"] == pytest.approx(0.0)   # scored on the final state
        with pytest.raises(RuntimeError, match="reset"):
            e.step(still)
    finally:
        e.close()


def test_agent_terminate_ends_the_episode(env):
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(ee_action(np.zeros(3), 0.0, False, terminate=True))
    assert terminated and not truncated and info["terminated_by_agent"] and not info["success"]


def test_malformed_actions_are_refused(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="ee_delta action"):
        env.step({"pick_pose": np.zeros(7), "place_pose": np.zeros(7)})
    with pytest.raises(ValueError, match="finite"):
        env.step({"translation": [np.nan, 0, 0], "yaw": [0.0], "suction": 0, "terminate": 0})
