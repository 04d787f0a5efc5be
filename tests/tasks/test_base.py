"""Final-state reward and success (issue 7 item 3): progress is judged on the current state, never banked."""

import numpy as np
import pybullet as p
import pytest

from vlarm.envs import make_env
from vlarm.tasks import make_task
from vlarm.tasks.base import Goal


def _two_block_task(scene):
    task = make_task("put-block-in-bowl-seen-colors")
    for seed in range(100):
        task.reset(scene, np.random.default_rng(seed), "train")
        if len(task.goals[0].objects) == 2:
            return task
    raise AssertionError("no two-block scene in 100 seeds")


def _move(scene, body, xyz):
    p.resetBasePositionAndOrientation(body, list(xyz), [0, 0, 0, 1], physicsClientId=scene.client)
    scene.settle()


def _away(scene, task):
    """A table position far from every target bowl."""
    bowls = np.array([t[0][:2] for g in task.goals for t in g.targets])
    for x in np.linspace(0.3, 0.7, 9):
        for y in np.linspace(-0.45, 0.45, 19):
            if np.min(np.linalg.norm(bowls - [x, y], axis=1)) > 0.15:
                return [x, y, 0.03]
    raise AssertionError("no free spot")


def test_undo_in_a_one_goal_task(scene):
    task = _two_block_task(scene)
    goal = task.goals[0]
    assert len(goal.targets) >= 2                                # n_blocks <= n_bowls
    a, b = goal.objects
    bowl = goal.targets[0][0]
    _move(scene, a, bowl + [0.0, 0.0, 0.03])
    assert task.reward()[0] == pytest.approx(0.5) and not task.done()
    _move(scene, a, _away(scene, task))                         # pulled back out of the bowl
    step, info = task.reward()
    assert step == pytest.approx(-0.5) and info["total_reward"] == pytest.approx(0.0) and not task.done()
    for block, target in zip((a, b), goal.targets, strict=False):
        _move(scene, block, target[0] + [0.0, 0.0, 0.03])
    total = task.reward()[1]["total_reward"]
    assert total == pytest.approx(1.0) and task.done()


def test_undo_in_a_two_goal_task_is_not_banked(scene):
    """Ravens' bug: a first goal met, then undone, still counted once the second was met."""
    task = _two_block_task(scene)
    only = task.goals[0]
    a, b = only.objects
    targets = only.targets
    task.goals = [
        Goal(objects=[a], symmetries=[0.0], matches=np.ones((1, len(targets)), bool), targets=targets, max_reward=0.5),
        Goal(objects=[b], symmetries=[0.0], matches=np.ones((1, len(targets)), bool), targets=targets, max_reward=0.5),
    ]
    task.reward()
    rewards = []
    _move(scene, a, targets[0][0] + [0.0, 0.0, 0.03])
    rewards.append(task.reward()[0])
    assert not task.done()
    _move(scene, b, targets[-1][0] + [0.02, 0.0, 0.06])
    step, info = task.reward()
    rewards.append(step)
    assert info["total_reward"] == pytest.approx(1.0) and info["goals_left"] == 0 and task.done()
    _move(scene, a, _away(scene, task))                          # the first goal undone after the second was met
    step, info = task.reward()
    rewards.append(step)
    assert step == pytest.approx(-0.5) and info["total_reward"] == pytest.approx(0.5)
    assert info["goals_left"] == 2 and not task.done()
    assert sum(rewards) == pytest.approx(info["total_reward"])    # step rewards sum to the final progress
    # the oracle works on the first goal that is not met: it picks block a again
    obs = scene.observe()
    action = task.oracle(obs, np.random.default_rng(0))
    assert np.linalg.norm(np.asarray(action.pick_pose[0][:2]) - np.asarray(scene.pose(a)[0][:2])) < 0.05


def test_step_after_termination_is_refused():
    env = make_env("put-block-in-bowl-seen-colors", camera_scale=0.25)
    try:
        env.reset(seed=0)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(env.oracle_action())
        assert info["success"]
        with pytest.raises(RuntimeError, match="call reset"):
            pose = np.array([0.5, 0, 0.05, 0, 0, 0, 1])
            env.step({"pick_pose": pose, "place_pose": pose})
        env.reset(seed=2)                                        # reset makes stepping legal again
        _, _, _, _, info = env.step(env.oracle_action())
        assert info["steps"] == 1
    finally:
        env.close()
