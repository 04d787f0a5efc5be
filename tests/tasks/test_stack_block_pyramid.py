"""stack-block-pyramid-seq: colours per split, per-step goals and instructions, oracle, undo, grammar, crowding."""

import numpy as np
import pybullet as p
import pytest

from vlarm.envs import make_env
from vlarm.sim import pick_place
from vlarm.sim.assets import BLOCK_SIZE
from vlarm.sim.stands import BROWN_SHADES, PYRAMID_BASE_HEIGHT
from vlarm.tasks import family_example, list_families, make_task
from vlarm.tasks.attributes import ALL_COLORS, EVAL_COLORS, TRAIN_COLORS
from vlarm.tasks.base import Task, TaskError
from vlarm.tasks.routing import route
from vlarm.tasks.stack_block_pyramid import MAX_STEPS, N_BLOCKS, SLOTS, step_instruction

VARIANTS = ("seen", "unseen", "full")
FAMILY = "stack-block-pyramid-seq"


def _name(variant: str) -> str:
    return f"{FAMILY}-{variant}{'-colors' if variant != 'full' else ''}"


def _blocks(task):
    return [g.objects[0] for g in task.goals]


def _teleport(scene, body, xyz, quat=(0, 0, 0, 1)):
    p.resetBasePositionAndOrientation(body, list(xyz), list(quat), physicsClientId=scene.client)


def _into_slot(task, slot):
    """Teleport the block of ``slot`` onto its target pose."""
    target = task.goals[slot].targets[0]
    _teleport(task.scene, task.goals[slot].objects[0], target[0], target[1])


def test_registry_and_example():
    assert list_families()[FAMILY] == [_name("full"), _name("seen"), _name("unseen")]
    assert route(family_example(FAMILY)).task == _name("seen")


@pytest.mark.parametrize("variant,split,palette", [
    ("seen", "train", TRAIN_COLORS), ("seen", "test", TRAIN_COLORS), ("unseen", "train", TRAIN_COLORS),
    ("unseen", "val", EVAL_COLORS), ("unseen", "test", EVAL_COLORS), ("full", "test", ALL_COLORS)])
def test_scene_and_colours_follow_the_split(scene, variant, split, palette):
    task = make_task(_name(variant))
    used = set()
    for seed in range(4):
        lang = task.reset(scene, np.random.default_rng(seed), split)
        assert lang == "stack the blocks into a pyramid" and task.max_steps == MAX_STEPS == 12
        colors = [task.goal_attributes[f"block{i}"][1] for i in range(N_BLOCKS)]
        assert len(set(colors)) == N_BLOCKS and set(colors) <= set(palette)
        assert [scene.objects[b].color for b in _blocks(task)] == colors
        fixed = [o for o in scene.objects.values() if o.fixed]
        assert len(fixed) == 1 and fixed[0].kind == "pyramid base" and len(scene.objects) == N_BLOCKS + 1
        assert [g.instruction for g in task.goals] == [step_instruction(colors, i) for i in range(N_BLOCKS)]
        assert task.goals[0].instruction == f"put the {colors[0]} block on the lightest brown block"
        assert task.goals[5].instruction == f"put the {colors[5]} block on the {colors[3]} and {colors[4]} blocks"
        assert all(g.max_reward == pytest.approx(1 / 6) and g.symmetries == [np.pi / 2] for g in task.goals)
        assert task.progress_now() == (0.0, 0) and task.instruction_now() == task.goals[0].instruction
        used |= set(colors)
    if palette is EVAL_COLORS:
        assert used - set(TRAIN_COLORS)


def test_base_has_three_brown_shades_lightest_first():
    assert BROWN_SHADES[0] > BROWN_SHADES[1] > BROWN_SHADES[2]
    assert [s[1] for s in SLOTS] == pytest.approx([-0.05, 0.0, 0.05, -0.025, 0.025, 0.0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_oracle_builds_the_pyramid_one_step_at_a_time(scene, variant):
    task = make_task(_name(variant))
    for seed in (3, 4):
        task.reset(scene, np.random.default_rng(seed), "test")
        shown = [instruction for instruction, _ in task.solve(scene, np.random.default_rng(seed))]
        assert task.progress > 0.99 and task.done(), (variant, seed)
        assert shown == [g.instruction for g in task.goals]   # each step told once, in order, as goals are met
        assert task.instruction_now() == "stack the blocks into a pyramid"


def test_partial_credit_is_per_block_and_judged_now(scene):
    task = make_task(_name("seen"))
    task.reset(scene, np.random.default_rng(0), "train")
    for slot in range(3):
        _into_slot(task, slot)
    scene.settle()
    step, info = task.reward()
    assert step == pytest.approx(0.5) and info["goals_left"] == 3
    assert task.instruction_now() == task.goals[3].instruction and not task.done()
    _into_slot(task, 5)                       # the top block without its supports: it falls, no credit
    scene.settle()
    assert task.reward()[0] == pytest.approx(0.0, abs=1e-9)


def test_a_block_at_the_right_xy_but_wrong_height_does_not_count(scene):
    task = make_task(_name("seen"))
    task.reset(scene, np.random.default_rng(1), "train")
    target = task.goals[3].targets[0]
    on_base = (np.array([target[0][0], target[0][1], PYRAMID_BASE_HEIGHT + BLOCK_SIZE / 2]), target[1])
    assert Task.is_match(task, on_base, target, np.pi / 2)          # Ravens' xy-only test would count it
    assert not task.is_match(on_base, target, np.pi / 2)
    assert task.is_match(target, target, np.pi / 2)


def test_undo_taking_the_pyramid_apart_drops_the_reward(scene, free_spot):
    task = make_task(_name("seen"))
    task.reset(scene, np.random.default_rng(5), "test")
    task.solve(scene, np.random.default_rng(5))
    assert task.done() and task.progress == pytest.approx(1.0)
    top = task.goals[5].objects[0]
    spot = free_spot(scene)
    result = pick_place(scene, (scene.pose(top)[0] + [0, 0, BLOCK_SIZE / 2], np.array([0, 0, 0, 1.0])),
                        (np.array([spot[0], spot[1], BLOCK_SIZE]), np.array([0, 0, 0, 1.0])))
    assert result.success, result.message
    step, info = task.reward()
    assert step == pytest.approx(-1 / 6) and info["total_reward"] == pytest.approx(5 / 6) and not task.done()
    assert task.instruction_now() == task.goals[5].instruction
    _teleport(scene, task.goals[1].objects[0], [*free_spot(scene), BLOCK_SIZE / 2])
    scene.settle()                            # the middle bottom block pulled out: the second row loses it too
    step, info = task.reward()
    assert step < -1 / 6 + 1e-6 and info["total_reward"] <= 4 / 6 + 1e-6 and not task.done()


ACCEPTED = [
    ("put the red block on the lightest brown block", {"block0": "red"}),
    ("Place the ORANGE block onto the middle brown block.", {"block1": "orange"}),
    ("please stack a grey cube on top of the darkest brown tile", {"block2": "gray"}),
    ("put red block on dark brown block", {"block2": "red"}),
    ("put the red block on the green and blue blocks", {"block3": "red", "block0": "green", "block1": "blue"}),
    ("move the pink block onto the white and the purple blocks", {"block3": "pink", "block0": "white",
                                                                  "block1": "purple"}),
    ("stack the blocks into a pyramid", {}),
    ("build a pyramid", {}),
    ("Make a block pyramid!", {}),
    ("arrange the coloured blocks as a pyramid", {}),
    ("build a pyramid of blocks", {}),
]


@pytest.mark.parametrize("instruction,goal", ACCEPTED)
def test_grammar_accepts_steps_and_the_whole_task(instruction, goal):
    assert make_task(_name("full")).parse_instruction(instruction) == goal
    assert route(instruction).family == FAMILY


REFUSED = [
    ("put the magenta block on the lightest brown block", ["pick colour 'magenta'", "known colours: blue"]),
    ("put the red block on the brightest brown block",
     ["base 'brightest' (did you mean 'lightest'?", "lightest / middle / darkest brown"]),
    ("put the red block on the lightest blue block", ["'lightest'"]),
    ("put the red block on the red and blue blocks", ["both 'red'"]),
    ("put the red block on the green and teal blocks", ["second support colour 'teal'"]),
    ("put the red bowl on the lightest brown block", ["object 'bowl'", "this task knows: block"]),
    ("put the red block under the lightest brown block", ["preposition 'under'", "known prepositions: on"]),
    ("build a castle", ["'build a castle'", "expected the form"]),
    ("stack the blocks into a pyramid quickly", ["extra words 'quickly'"]),
]


@pytest.mark.parametrize("instruction,fragments", REFUSED)
def test_grammar_refusals_name_the_word(instruction, fragments):
    with pytest.raises(ValueError) as err:
        make_task(_name("seen")).parse_instruction(instruction)
    message = str(err.value)
    assert message.startswith("cannot ground the instruction. Understood: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_grounded_step_builds_a_scene_with_that_step(scene):
    task = make_task(_name("unseen"))
    on_base = task.parse_instruction("put the orange block on the middle brown block")
    on_pair = task.parse_instruction("put the red block on the white and pink blocks")
    for seed in range(3):
        task.reset(scene, np.random.default_rng(seed), "test", on_base)
        assert task.goals[1].instruction == "put the orange block on the middle brown block"
        task.reset(scene, np.random.default_rng(seed), "test", on_pair)
        assert task.goals[3].instruction == "put the red block on the white and pink blocks"
        assert task.goals[0].instruction == "put the white block on the lightest brown block"
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        task.reset(scene, np.random.default_rng(0), "test", {"block0": "teal"})
    with pytest.raises(ValueError, match="this task takes: block0"):
        task.reset(scene, np.random.default_rng(0), "test", {"pick": "red"})


@pytest.mark.parametrize("free_calls", [0, 3])
def test_a_full_table_is_a_clear_error_not_a_loop(scene, monkeypatch, free_calls):
    task = make_task(_name("seen"))
    original, calls = Task.sample_pose, {"n": 0}

    def crowded(self, rng, radius, placed, attempts=100):
        calls["n"] += 1
        return original(self, rng, radius, placed, attempts) if calls["n"] <= free_calls else None

    monkeypatch.setattr(Task, "sample_pose", crowded)
    with pytest.raises(TaskError, match="no free spot for (the pyramid base|block 3 of 6)"):
        task.reset(scene, np.random.default_rng(0), "test")
    assert calls["n"] == free_calls + 1


def test_env_observation_tells_one_step_at_a_time():
    env = make_env(_name("unseen"), split="test", camera_scale=0.25)
    try:
        obs, info = env.reset(seed=10001, options={"instruction": "put the orange block on the lightest brown block"})
        steps = [g.instruction for g in env.task.goals]
        assert info["instruction"] == "stack the blocks into a pyramid" and info["novelty"] in ("some", "all")
        assert obs["instruction"] == steps[0] == "put the orange block on the lightest brown block"
        obs, reward, terminated, _, _ = env.step(env.oracle_action())
        assert reward == pytest.approx(1 / 6) and not terminated and obs["instruction"] == steps[1]
    finally:
        env.close()
