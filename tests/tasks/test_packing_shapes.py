"""packing-shapes: unseen shapes and colours on test, the zone metric, the oracle, the grammar, a crowded table."""

import numpy as np
import pybullet as p
import pytest

from vlarm.sim import Scene, default_cameras
from vlarm.sim.transforms import quat_to_yaw, yaw_to_quat
from vlarm.tasks import family_example, list_families, make_task
from vlarm.tasks.assembling_kits import spoken
from vlarm.tasks.attributes import EVAL_COLORS, EVAL_SHAPES, TRAIN_COLORS, TRAIN_SHAPES

TASK = "packing-shapes"


CAMERA_SCALE = 0.5   # read by the shared `scene` fixture (tests/tasks/conftest.py)


def _shapes(task):
    return [(b, o.kind, o.color) for b, o in task.scene.objects.items() if not o.fixed]


def test_one_variant_whose_example_grounds():
    assert list_families()[TASK] == [TASK]
    task = make_task(TASK)
    assert task.variant == "unseen" and task.parse_instruction(family_example(TASK)) == {"shape": "letter E"}


@pytest.mark.parametrize("split,shapes,colors", [("train", TRAIN_SHAPES, TRAIN_COLORS),
                                                 ("val", EVAL_SHAPES, EVAL_COLORS),
                                                 ("test", EVAL_SHAPES, EVAL_COLORS)])
def test_shapes_and_colours_follow_the_split(scene, split, shapes, colors):
    task = make_task(TASK)
    used_colors, targets = set(), set()
    for seed in range(4):
        lang = task.reset(scene, np.random.default_rng(seed), split)
        objs = _shapes(task)
        names, cols = [o[1] for o in objs], [o[2] for o in objs]
        assert len(objs) == 5 and len(set(names)) == 5 and len(set(cols)) == 5
        assert set(names) <= set(shapes) and set(cols) <= set(colors)
        goal = task.goals[0]
        target = task.scene.objects[goal.objects[0]]
        assert lang == f"pack the {spoken(target.kind)} in the brown box" and task.max_steps == 1
        assert goal.metric == "zone" and len(goal.objects) == 1
        assert task.goal_attributes == {"shape": ("shape", target.kind), "color": ("color", target.color)}
        (zone_pose, size), = goal.zones
        assert 0.1 <= size[0] <= 0.15 and 0.1 <= size[1] <= 0.15
        used_colors |= set(cols)
        targets.add(target.kind)
    if colors is EVAL_COLORS:
        assert used_colors & {"orange", "purple", "pink", "white"}
    assert len(targets) > 1


def test_zone_metric_counts_the_share_inside_the_box(scene):
    task = make_task(TASK)
    task.reset(scene, np.random.default_rng(5), "train")
    goal = task.goals[0]
    body, (zone_pose, size) = goal.objects[0], goal.zones[0]
    yaw = quat_to_yaw(zone_pose[1])
    axis = np.array([np.cos(yaw), np.sin(yaw), 0.0])

    def put(offset):
        p.resetBasePositionAndOrientation(body, list(zone_pose[0] + axis * offset + [0, 0, 0.03]),
                                          list(yaw_to_quat(yaw)), physicsClientId=scene.client)
        return task.reward()[1]["total_reward"]

    assert put(0.0) == pytest.approx(1.0) and task.done()
    half = put(size[0] / 2)                                   # the box's wall cuts the shape roughly in half
    assert 0.3 < half < 0.7 and not task.done()
    assert put(size[0] / 2 + 0.1) == pytest.approx(0.0)


@pytest.mark.parametrize("seed", [1, 2])
def test_oracle_packs_the_shape(scene, seed):
    task = make_task(TASK)
    task.reset(scene, np.random.default_rng(seed), "test")
    action = task.oracle(scene.observe(), np.random.default_rng(0))
    result = task.execute(scene, action.pick_pose, action.place_pose)
    assert result.success and result.grasped_body == task.goals[0].objects[0]
    assert task.reward()[1]["total_reward"] > 0.99 and task.done()


def test_instruction_sets_the_target(scene):
    task = make_task(TASK)
    goal = task.parse_instruction("pack the orange letter L in the brown box")
    for seed in range(3):
        lang = task.reset(scene, np.random.default_rng(seed), "test", goal)
        assert lang == "pack the letter L shape in the brown box"
        target = task.scene.objects[task.goals[0].objects[0]]
        assert (target.kind, target.color) == ("letter L", "orange")
        assert [o[1] for o in _shapes(task)].count("letter L") == 1


ACCEPTED = [
    ("pack the letter E shape in the brown box", {"shape": "letter E"}),
    ("Pack the letter e into the box.", {"shape": "letter E"}),
    ("please put the heart inside the brown container", {"shape": "heart"}),
    ("place a red star in the box", {"shape": "star", "color": "red"}),
    ("drop the disc in the container!", {"shape": "circle"}),
]


@pytest.mark.parametrize("instruction,goal", ACCEPTED)
def test_grammar_accepts(instruction, goal):
    assert make_task(TASK).parse_instruction(instruction) == goal


REFUSED = [
    ("pack the letter Z in the brown box", ["shape 'letter-z' (", "known shapes: letter R"]),
    ("pack the octagon in the brown box", ["shape 'octagon'", "known shapes"]),
    ("pack the heart in the bowl", ["target 'bowl' (this task knows: the brown box)", "shape 'heart'"]),
    ("pack the heart on the brown box", ["preposition 'on'"]),
    ("stack the heart in the brown box", ["action 'stack'", "known actions: pack"]),
    ("put the red letter E shape in the letter E shape hole", ["extra words"]),
]


@pytest.mark.parametrize("instruction,fragments", REFUSED)
def test_grammar_refuses_naming_the_word(instruction, fragments):
    with pytest.raises(ValueError, match="cannot ground the instruction") as err:
        make_task(TASK).parse_instruction(instruction)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_crowded_table_gives_fewer_distractors():
    small = Scene(cameras=default_cameras(0.25), bounds=np.array([[0.3, 0.6], [-0.17, 0.17], [0.0, 0.28]]))
    try:
        task = make_task(TASK)
        counts = []
        for seed in range(3):
            task.reset(small, np.random.default_rng(seed), "train")
            counts.append(len(_shapes(task)))
            assert len(task.goals[0].objects) == 1
        assert min(counts) < 5
    finally:
        small.close()
