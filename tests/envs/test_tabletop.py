import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vlarm.envs  # noqa: F401 - registers the ids
from vlarm.envs import env_id, make_env

TASK = "put-block-in-bowl-seen-colors"


@pytest.fixture(scope="module")
def env():
    e = make_env(TASK, camera_scale=0.5)
    yield e
    e.close()


def test_ids_are_registered():
    assert env_id(TASK) == f"vlarm/{TASK}-v0"
    e = gym.make(env_id(TASK), camera_scale=0.25)
    assert e.unwrapped.task_name == TASK
    e.close()


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match="valid tasks"):
        make_env("stack-everything")


def test_passes_gymnasium_env_checker():
    e = make_env(TASK, camera_scale=0.25)
    check_env(e, skip_render_check=True)
    e.close()


def test_observation_layout(env):
    obs, info = env.reset(seed=0, options={"split": "train"})
    assert env.observation_space.contains(obs)
    assert obs["heightmap"].shape == (320, 160) and obs["heightmap"].dtype == np.float32
    assert obs["colormap"].shape == (320, 160, 3) and obs["colormap"].dtype == np.uint8
    assert set(obs["rgb"]) == {"front", "left", "right"} and obs["rgb"]["front"].shape == (240, 320, 3)
    assert obs["instruction"] == info["instruction"] and info["seed"] == 0


def _oracle_episode(env, seed):
    obs, _ = env.reset(seed=seed, options={"split": "test"})
    first = {k: obs[k].copy() for k in ("heightmap", "colormap")}
    actions, rewards, done = [], [], False
    while not done:
        action = env.oracle_action()
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(np.concatenate([action["pick_pose"], action["place_pose"]]))
        rewards.append(reward)
        done = terminated or truncated
    return first, np.array(actions), rewards, info


def test_same_seed_same_scene_and_oracle_episode(env):
    a = _oracle_episode(env, 10001)
    b = _oracle_episode(env, 10001)
    assert np.array_equal(a[0]["heightmap"], b[0]["heightmap"])
    assert np.array_equal(a[0]["colormap"], b[0]["colormap"])
    assert np.array_equal(a[1], b[1]) and a[2] == b[2]
    c = _oracle_episode(env, 10003)
    assert not np.array_equal(a[0]["heightmap"], c[0]["heightmap"])


@pytest.mark.parametrize("task", ["put-block-in-bowl-seen-colors", "put-block-in-bowl-unseen-colors"])
def test_oracle_solves_episodes(task):
    e = make_env(task, camera_scale=0.5)
    for seed in (10001, 10003, 10005):
        _, _, rewards, info = _oracle_episode(e, seed)
        assert info["success"] and sum(rewards) == pytest.approx(info["total_reward"]) and sum(rewards) > 0.99
    e.close()


def test_instruction_option_builds_matching_scene(env):
    obs, info = env.reset(seed=5, options={"instruction": "put the white blocks in a pink bowl"})
    assert info["instruction"] == "put the white blocks in a pink bowl"
    colors = {(o.kind, o.color) for o in env.scene.objects.values()}
    assert ("block", "white") in colors and ("bowl", "pink") in colors


def test_malformed_action_is_rejected(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="7 finite numbers"):
        env.step({"pick_pose": np.zeros(3), "place_pose": np.zeros(7)})
    for bad in (np.zeros(14), {"pick_pose": np.zeros(7)}, [np.zeros(7), np.zeros(7)]):
        with pytest.raises(ValueError, match="'pick_pose' and 'place_pose'"):
            env.step(bad)


def test_terminal_observation_can_be_left_unrendered():
    """Issue 10: collection and evaluation skip rendering the observation of the step that ends an episode."""
    env = make_env("put-block-in-bowl-seen-colors", camera_scale=0.25, render_terminal=False)
    try:
        obs, _ = env.reset(seed=0)
        assert obs["colormap"].any()
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(env.oracle_action())
            if not (terminated or truncated):
                assert obs["colormap"].any()                    # mid-episode observations are rendered
        assert info["success"] and not obs["colormap"].any() and not obs["heightmap"].any()
        assert env.observation_space.contains(obs)
    finally:
        env.close()


class PaintTable:
    """An appearance hook: a random table colour (module level, so an env holding it pickles)."""

    def __call__(self, scene, rng):
        from vlarm.sim import appearance

        appearance.set_table_color(scene, rng.uniform(0.6, 0.9, 3))


def test_appearance_hook_is_applied_before_the_first_observation():
    """RT-1's background test on pick-and-place policies: the hook repaints the scene the first image shows, the
    same seed gives the same look, and a pickled env keeps the hook."""
    import pickle

    plain = make_env(TASK, camera_scale=0.25)
    painted = make_env(TASK, camera_scale=0.25, appearance=PaintTable())
    a, _ = plain.reset(seed=3)
    b, _ = painted.reset(seed=3)
    c, _ = painted.reset(seed=3)
    assert np.abs(a["colormap"].astype(int) - b["colormap"].astype(int)).max() > 50   # the table changed colour
    np.testing.assert_array_equal(b["colormap"], c["colormap"])
    np.testing.assert_array_equal(a["heightmap"], b["heightmap"])                     # geometry did not
    copy = pickle.loads(pickle.dumps(painted))
    assert isinstance(copy.appearance, PaintTable)
    for e in (plain, painted, copy):
        e.close()
