"""Gymnasium vector envs (issue 8 part 6): every slot sees what a standalone env with its seed sees, instruction
strings included, and autoreset moves each slot on to a new, reproducible scene without skipping or repeating one."""

import gymnasium as gym
import numpy as np
import pytest

from vlarm.envs import env_id, make_env
from vlarm.envs.tabletop import AUTORESET_SEED_STRIDE

TASK = "put-block-in-bowl-seen-colors"
SCALE = 0.2
N = 3


def _same_observation(a: dict, b: dict) -> bool:
    """Every image, map and the instruction equal (``b`` a standalone env's observation)."""
    return (a["instruction"] == b["instruction"] and np.array_equal(a["heightmap"], b["heightmap"])
            and np.array_equal(a["colormap"], b["colormap"])
            and all(np.array_equal(a["rgb"][c], b["rgb"][c]) and np.array_equal(a["depth"][c], b["depth"][c])
                    for c in b["rgb"]))


def _slot(obs: dict, i: int) -> dict:
    return {"instruction": obs["instruction"][i], "heightmap": obs["heightmap"][i], "colormap": obs["colormap"][i],
            "rgb": {c: v[i] for c, v in obs["rgb"].items()}, "depth": {c: v[i] for c, v in obs["depth"].items()}}


@pytest.fixture(scope="module")
def standalone():
    """Observations of a standalone env after ``reset(seed=i)``, i < N."""
    env = make_env(TASK, camera_scale=SCALE)
    out = [env.reset(seed=i)[0] for i in range(N)]
    env.close()
    return out


@pytest.mark.parametrize("mode, vector_kwargs", [("sync", {}), ("async", {}), ("async", {"shared_memory": False}),
                                                 (None, {})])
def test_every_slot_matches_a_standalone_env_with_its_seed(standalone, mode, vector_kwargs):
    """``gym.make_vec`` as users call it; async with shared memory used to return "aaaa..." as every instruction."""
    envs = gym.make_vec(env_id(TASK), num_envs=N, vectorization_mode=mode, vector_kwargs=vector_kwargs,
                        camera_scale=SCALE)
    try:
        obs, info = envs.reset(seed=0)
        assert list(info["seed"]) == list(range(N))
        assert isinstance(obs["instruction"], tuple) and all(isinstance(t, str) for t in obs["instruction"])
        for i in range(N):
            assert _same_observation(_slot(obs, i), standalone[i]), f"slot {i} differs from a standalone env"
        assert envs.single_observation_space["instruction"].contains(obs["instruction"][0])
    finally:
        envs.close()


def test_async_without_copy_still_reads_the_instructions(standalone):
    envs = gym.vector.AsyncVectorEnv([lambda: make_env(TASK, camera_scale=SCALE)] * 2, copy=False)
    try:
        obs, _ = envs.reset(seed=0)
        assert list(obs["instruction"]) == [standalone[0]["instruction"], standalone[1]["instruction"]]
    finally:
        envs.close()


def test_autoreset_moves_every_slot_to_a_new_reproducible_scene():
    """NEXT_STEP autoreset: the step after an episode ends resets that slot (its action ignored) with seed
    ``previous + 2**32``, and returns that scene's first observation, exactly as a standalone env reset with it."""
    envs = gym.vector.SyncVectorEnv([lambda: make_env(TASK, camera_scale=SCALE, render_terminal=False)] * N)
    reference = make_env(TASK, camera_scale=SCALE)
    try:
        assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
        obs, info = envs.reset(seed=10)
        seeds = [[int(s)] for s in info["seed"]]       # per slot: the seed of every episode it played
        ended = np.zeros(N, bool)                      # slot's episode ended at the previous step
        while min(len(s) for s in seeds) < 2:
            subs = [e.unwrapped for e in envs.envs]
            actions = [sub.action_space.sample() if ended[i] else sub.oracle_action() for i, sub in enumerate(subs)]
            batch = {k: np.stack([a[k] for a in actions]) for k in ("pick_pose", "place_pose")}
            obs, _, terminated, truncated, info = envs.step(batch)
            for i in np.flatnonzero(ended):            # these slots were reset by this step
                assert subs[i].steps == 0 and info["_seed"][i]
                new = int(info["seed"][i])
                assert new == seeds[i][-1] + AUTORESET_SEED_STRIDE
                seeds[i].append(new)
                ref_obs, _ = reference.reset(seed=new)
                assert _same_observation(_slot(obs, i), ref_obs), f"slot {i} after autoreset is not seed {new}"
            assert terminated[ended].sum() == 0 and truncated[ended].sum() == 0
            ended = terminated | truncated
        flat = [s for slot in seeds for s in slot]
        assert len(set(flat)) == len(flat)             # no scene twice, within a slot or across slots
        assert [slot[0] for slot in seeds] == [10, 11, 12]
    finally:
        envs.close()
        reference.close()


def test_an_unseeded_reset_continues_the_seed_sequence():
    env = make_env(TASK, camera_scale=SCALE)
    _, first = env.reset(seed=5)
    _, second = env.reset()
    _, third = env.reset()
    stride = AUTORESET_SEED_STRIDE
    assert (first["seed"], second["seed"], third["seed"]) == (5, 5 + stride, 5 + 2 * stride)
    fresh = make_env(TASK, camera_scale=SCALE)
    _, never_seeded = fresh.reset()
    assert 0 <= never_seeded["seed"] < 2**31
    env.close()
    fresh.close()
