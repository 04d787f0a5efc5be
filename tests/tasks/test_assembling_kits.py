"""assembling-kits-seq: splits, per-step instructions, the pose metric with symmetries, undo, oracle, grammar."""

import numpy as np
import pybullet as p
import pytest

from vlarm.sim import Scene, default_cameras
from vlarm.sim.shapes import SYMMETRY
from vlarm.sim.transforms import quat_to_yaw, yaw_to_quat
from vlarm.tasks import family_example, list_families, make_task
from vlarm.tasks.assembling_kits import hole_location, spoken
from vlarm.tasks.attributes import ALL_COLORS, EVAL_COLORS, EVAL_SHAPES, KIT_SHAPES, TRAIN_COLORS, TRAIN_SHAPES
from vlarm.tasks.base import TaskError

VARIANTS = ("seen", "unseen", "full")


def _name(variant: str) -> str:
    return f"assembling-kits-seq-{variant}{'-colors' if variant != 'full' else ''}"


CAMERA_SCALE = 0.5   # read by the shared `scene` fixture (tests/tasks/conftest.py)


def _kit(task):
    """Per goal: (body, hole pose, shape name, colour)."""
    out = []
    for goal in task.goals:
        body = goal.objects[0]
        obj = task.scene.objects[body]
        out.append((body, goal.targets[0], obj.kind, obj.color))
    return out


def _place(scene, body, pose, yaw_offset=0.0, dx=0.0):
    yaw = quat_to_yaw(pose[1]) + yaw_offset
    p.resetBasePositionAndOrientation(body, list(pose[0] + [dx, 0.0, 0.01]), list(yaw_to_quat(yaw)),
                                      physicsClientId=scene.client)


def test_registry_names_the_three_variants():
    assert list_families()["assembling-kits-seq"] == [_name("full"), _name("seen"), _name("unseen")]
    task = make_task(_name("seen"))
    assert task.parse_instruction(family_example("assembling-kits-seq")) == {"color": "red", "shape": "letter R"}


@pytest.mark.parametrize("variant,split,shapes,colors", [
    ("seen", "train", TRAIN_SHAPES, TRAIN_COLORS), ("seen", "test", EVAL_SHAPES, TRAIN_COLORS),
    ("unseen", "train", TRAIN_SHAPES, TRAIN_COLORS), ("unseen", "test", EVAL_SHAPES, EVAL_COLORS),
    ("unseen", "val", EVAL_SHAPES, EVAL_COLORS), ("full", "test", KIT_SHAPES, ALL_COLORS)])
def test_shapes_and_colours_follow_the_split(scene, variant, split, shapes, colors):
    task = make_task(_name(variant))
    used_shapes, used_colors = set(), set()
    for seed in range(4):
        lang = task.reset(scene, np.random.default_rng(seed), split)
        kit = _kit(task)
        assert len(kit) == 5 and task.max_steps == 5
        names, cols = [k[2] for k in kit], [k[3] for k in kit]
        assert set(names) <= set(shapes) and set(cols) <= set(colors) and len(set(cols)) == 5
        used_shapes |= set(names)
        used_colors |= set(cols)
        # one instruction per step; the policy is told the first one
        assert lang == task.goals[0].instruction == task.instruction_now()
        for (_, _, name, color), goal in zip(kit, task.goals, strict=True):
            assert goal.instruction.startswith(f"put the {color} {spoken(name)} in the ")
            assert goal.instruction.endswith(f"{spoken(name)} hole") and goal.max_reward == pytest.approx(0.2)
            assert goal.symmetries == [SYMMETRY[KIT_SHAPES.index(name)]]
            loc = goal.instruction.split(" in the ")[1][: -len(f"{spoken(name)} hole")].strip()
            assert (loc != "") == (names.count(name) > 1)          # a location exactly when the shape repeats
        assert task.goal_attributes["color 1"] == ("color", kit[0][3])
        assert task.goal_attributes["shape 1"] == ("shape", kit[0][2])
    if shapes is EVAL_SHAPES:
        assert used_shapes & {"letter E", "letter M", "ring", "heart", "hexagon", "letter L"}
    if colors is EVAL_COLORS:
        assert used_colors & {"orange", "purple", "pink", "white"}


def test_hole_location_words():
    pos = np.array([[0.4, -0.1], [0.4, 0.0], [0.4, 0.1], [0.5, -0.05], [0.5, 0.05]])
    assert hole_location(0, [1, 1, 1, 2, 3], pos) == "left "
    assert hole_location(1, [1, 1, 1, 2, 3], pos) == "middle "
    assert hole_location(2, [1, 1, 1, 2, 3], pos) == "right "
    assert hole_location(0, [1, 2, 3, 1, 4], pos) == "top "          # x separates more than y
    assert hole_location(3, [1, 2, 3, 1, 4], pos) == "bottom "
    assert hole_location(4, [1, 2, 3, 1, 4], pos) == ""


def test_pose_metric_tolerance_and_symmetry(scene):
    task = make_task(_name("seen"))
    target = (np.array([0.5, 0.0, 0.0]), yaw_to_quat(0.3))
    assert task.is_match((np.array([0.509, 0.0, 0.01]), yaw_to_quat(0.3 + np.deg2rad(14))), target, 2 * np.pi)
    assert not task.is_match((np.array([0.511, 0.0, 0.01]), yaw_to_quat(0.3)), target, 2 * np.pi)
    assert not task.is_match((np.array([0.5, 0.0, 0.01]), yaw_to_quat(0.3 + np.deg2rad(16))), target, 2 * np.pi)
    # a square turned a quarter turn still fits; a letter does not
    assert task.is_match((np.array([0.5, 0.0, 0.01]), yaw_to_quat(0.3 + np.pi / 2)), target, SYMMETRY[3])
    assert not task.is_match((np.array([0.5, 0.0, 0.01]), yaw_to_quat(0.3 + np.pi / 2)), target, SYMMETRY[0])


def test_each_step_counts_in_the_final_state_and_undo_drops_it(scene):
    task = make_task(_name("unseen"))
    task.reset(scene, np.random.default_rng(3), "test")
    kit = _kit(task)
    for k, (body, hole, _, _) in enumerate(kit):
        assert task.instruction_now() == task.goals[k].instruction
        _place(scene, body, hole)
        scene.settle()
        step, info = task.reward()
        assert step == pytest.approx(0.2, abs=1e-6) and info["goals_left"] == 4 - k
    assert task.done() and task.progress == pytest.approx(1.0)
    # take the third shape back out of its hole
    body, hole = kit[2][0], kit[2][1]
    p.resetBasePositionAndOrientation(body, [hole[0][0], hole[0][1] + 0.15, 0.02], [0, 0, 0, 1],
                                      physicsClientId=scene.client)
    scene.settle()
    step, info = task.reward()
    assert step == pytest.approx(-0.2, abs=1e-6) and info["total_reward"] == pytest.approx(0.8)
    assert not task.done() and task.instruction_now() == task.goals[2].instruction


def test_a_shape_counts_only_in_its_own_hole_and_at_its_yaw(scene):
    task = make_task(_name("seen"))
    for seed in range(40):                        # a kit holding a shape twice, and a letter
        task.reset(scene, np.random.default_rng(seed), "train")
        names = [k[2] for k in _kit(task)]
        twins = [i for i, n in enumerate(names) if names.count(n) > 1]
        letters = [i for i, n in enumerate(names) if SYMMETRY[KIT_SHAPES.index(n)] == 2 * np.pi]
        if twins and letters:
            break
    kit = _kit(task)
    a, b = twins[0], [i for i in twins if i != twins[0]][0]
    _place(scene, kit[a][0], kit[b][1])                      # the twin's hole: same shape, wrong hole
    scene.settle()
    assert task.reward()[1]["total_reward"] == pytest.approx(0.0)
    i = letters[0]
    _place(scene, kit[i][0], kit[i][1], yaw_offset=np.pi / 2)
    scene.settle()
    assert task.reward()[1]["total_reward"] == pytest.approx(0.0)
    _place(scene, kit[i][0], kit[i][1], yaw_offset=0.0)
    scene.settle()
    assert task.reward()[1]["total_reward"] == pytest.approx(0.2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_oracle_assembles_the_kit(scene, variant):
    task = make_task(_name(variant))
    task.reset(scene, np.random.default_rng(7), "test")
    task.solve(scene, np.random.default_rng(0))
    assert task.progress > 0.99 and task.done()


def test_instruction_builds_its_step_first(scene):
    task = make_task(_name("unseen"))
    for text, color, shape, loc in [("put the orange letter E in the letter E hole", "orange", "letter E", ""),
                                    ("put the red ring in the left ring hole", "red", "ring", "left "),
                                    ("put the pink heart in the top heart hole", "pink", "heart", "top "),
                                    ("put the blue star in the middle star hole", "blue", "star", "middle ")]:
        goal = task.parse_instruction(text)
        for seed in range(3):
            lang = task.reset(scene, np.random.default_rng(seed), "test", goal)
            assert lang == f"put the {color} {spoken(shape)} in the {loc}{spoken(shape)} hole"
            names = [k[2] for k in _kit(task)]
            assert (names.count(shape) == 1) == (loc == "")
            assert len({k[3] for k in _kit(task)}) == 5


ACCEPTED = [
    ("put the red letter R shape in the letter R shape hole", {"color": "red", "shape": "letter R"}),
    ("Put the RED letter r in the letter r hole.", {"color": "red", "shape": "letter R"}),
    ("please place the grey letter e shape into the bottom letter e hole",
     {"color": "gray", "shape": "letter E", "location": "bottom"}),
    ("insert the white heart inside the right heart hole!", {"color": "white", "shape": "heart",
                                                             "location": "right"}),
    ("move a pink triangle shape into the triangle slot", {"color": "pink", "shape": "triangle"}),
    ("put the cyan rhombus in the diamond hole", {"color": "cyan", "shape": "diamond"}),
    ("assemble the kit", {}),
    ("Please complete the kit.", {}),
]


@pytest.mark.parametrize("instruction,goal", ACCEPTED)
def test_grammar_accepts(instruction, goal):
    assert make_task(_name("full")).parse_instruction(instruction) == goal


REFUSED = [
    ("put the red letter R in the triangle hole", ["Understood: shape 'letter R', colour 'red'",
                                                    "hole shape 'triangle'", "only fits a letter R shape hole"]),
    ("put the red letter Q in the letter Q hole", ["shape 'letter-q' (", "known shapes: letter R", "colour 'red'"]),
    ("put the magenta ring in the ring hole", ["colour 'magenta'", "known colours"]),
    ("put the ring in the ring hole", ["no colour"]),
    ("put the red ring in the upper ring hole", ["'upper' before 'ring'"]),
    ("put the red ring on the ring hole", ["preposition 'on'"]),
    ("put the red ring in the ring bowl", ["target 'bowl' (this task knows: hole)"]),
    ("assemble the puzzle", ["'assemble the puzzle' (expected the form 'assemble the kit')"]),
    ("", ["an empty instruction"]),
]


@pytest.mark.parametrize("instruction,fragments", REFUSED)
def test_grammar_refuses_naming_the_word(instruction, fragments):
    with pytest.raises(ValueError, match="cannot ground the instruction") as err:
        make_task(_name("seen")).parse_instruction(instruction)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_crowded_table_is_a_clear_error_not_a_loop():
    # the kit fits this workspace, five shapes beside it do not
    small = Scene(cameras=default_cameras(0.25), bounds=np.array([[0.3, 0.7], [-0.22, 0.22], [0.0, 0.28]]))
    try:
        with pytest.raises(TaskError, match="no room on the table"):
            make_task(_name("seen")).reset(small, np.random.default_rng(0), "train")
    finally:
        small.close()
