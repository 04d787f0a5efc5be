"""SayCan's tabletop: scene, skills task, oracle, registry (kept out of instruction routing)."""

from __future__ import annotations

import numpy as np
import pytest

from vlarm.tasks import list_families, list_tasks, make_task
from vlarm.tasks.saycan_tabletop import PLACES, SceneSpec, parse_skill, skill_text


def test_registered_apart_from_the_cliport_families():
    assert {"saycan-skills", "saycan-tabletop"} <= set(list_tasks())
    assert "saycan-tabletop" not in list_families()
    from vlarm.tasks.routing import route

    with pytest.raises(ValueError):
        route("pick the red block and place it on the green bowl")   # not a CLIPort family's instruction


def test_skill_episode_builds_four_blocks_four_bowls_and_the_oracle_solves_it():
    from vlarm.envs import make_env

    env = make_env("saycan-skills", split="train", camera_scale=0.25)
    try:
        obs, info = env.reset(seed=0)
        task = env.task
        kinds = sorted(o.kind for o in env.scene.objects.values())
        assert kinds == ["block"] * 4 + ["bowl"] * 4
        pick, place = parse_skill(info["instruction"])
        assert pick in task.bodies and (place in task.bodies or place in PLACES)
        _, reward, terminated, _, _ = env.step(env.oracle_action())
        assert terminated and reward > 0.99
    finally:
        env.close()


def test_instruction_builds_a_matching_scene_and_bad_skills_are_refused():
    task = make_task("saycan-skills")
    goal = task.parse_instruction("Pick the purple block and place it on the top left corner.")
    assert goal == {"pick": "purple block", "place": "top left corner"}
    with pytest.raises(ValueError, match="bowls are fixed"):
        task.parse_instruction("pick the red bowl and place it on the middle")
    with pytest.raises(ValueError, match="the form is"):
        task.parse_instruction("dance")
    with pytest.raises(ValueError, match="on itself"):
        task.parse_instruction("pick the red block and place it on the red block")
    assert skill_text("red block", "middle") == "pick the red block and place it on the middle"


def test_scene_spec_starts_and_validation():
    from vlarm.sim import Scene, default_cameras

    spec = SceneSpec(("red", "blue"), ("green",), {"red block": "green bowl", "blue block": "top right corner"})
    task = make_task("saycan-tabletop")
    scene = Scene(cameras=default_cameras(0.25))
    try:
        task.reset(scene, np.random.default_rng(0), "test", {"spec": spec})
        pos = task.object_positions()
        assert np.hypot(*(pos["red block"][:2] - pos["green bowl"][:2])) < 0.03
        assert np.hypot(*(pos["blue block"][:2] - np.array(PLACES["top right corner"]))) < 0.03
    finally:
        scene.close()
    with pytest.raises(ValueError, match="distinct"):
        SceneSpec(("red", "red"), ())
    with pytest.raises(ValueError, match="known colours"):
        SceneSpec(("magenta",), ())
    with pytest.raises(ValueError, match="neither an object"):
        SceneSpec(("red",), (), {"red block": "the moon"})
