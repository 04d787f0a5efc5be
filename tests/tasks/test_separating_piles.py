"""separating-piles: scene sampling and splits, the zone metric, the push oracle, bounded resets, the grammar."""

import numpy as np
import pybullet as p
import pytest

from vlarm.sim import Scene, default_cameras
from vlarm.sim.transforms import multiply
from vlarm.tasks import TaskError, list_families, make_task
from vlarm.tasks import separating_piles as sp
from vlarm.tasks.attributes import EVAL_COLORS, TRAIN_COLORS, values_for
from vlarm.tasks.base import SUCCESS_THRESHOLD

VARIANTS = ["separating-piles-seen-colors", "separating-piles-unseen-colors", "separating-piles-full"]


def _zones(scene):
    return {o.color: b for b, o in scene.objects.items() if o.kind == "zone"}


def _put(scene, body, xy, frame=((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))):
    """Teleport a pile block to ``xy`` in ``frame`` (default: the world), resting on the table."""
    pos, quat = multiply(frame, ((xy[0], xy[1], 0.0), (0.0, 0.0, 0.0, 1.0)))
    p.resetBasePositionAndOrientation(body, [pos[0], pos[1], sp.PILE_BLOCK_SIZE / 2], quat,
                                      physicsClientId=scene.client)


def test_registered_as_one_family():
    assert sorted(list_families()["separating-piles"]) == sorted(VARIANTS)
    for name in VARIANTS:
        assert make_task(name).family == "separating-piles" and make_task(name).max_steps == 20


@pytest.mark.parametrize("name,split,palette", [
    ("separating-piles-seen-colors", "test", TRAIN_COLORS), ("separating-piles-unseen-colors", "train", TRAIN_COLORS),
    ("separating-piles-unseen-colors", "test", EVAL_COLORS), ("separating-piles-unseen-colors", "val", EVAL_COLORS),
    ("separating-piles-full", "test", values_for("color", "test", "full"))])
def test_scene_and_colours_follow_the_split(scene, name, split, palette):
    task = make_task(name)
    used = set()
    for seed in range(6):
        lang = task.reset(scene, np.random.default_rng(seed), split)
        block_color, square_color = task.goal_attributes["pick"][1], task.goal_attributes["place"][1]
        assert task.goal_attributes == {"pick": ("color", block_color), "place": ("color", square_color)}
        assert lang == f"push the pile of {block_color} blocks into the {square_color} square"
        zones = _zones(scene)
        assert len(zones) == 2 and square_color in zones and block_color not in zones
        colours = {block_color, *zones}
        assert len(colours) == 3 and colours <= set(palette)
        used |= colours
        goal = task.goals[0]
        assert goal.metric == "zone" and len(goal.objects) == sp.N_BLOCKS
        assert np.allclose(goal.zones[0][0][0], scene.pose(zones[square_color])[0])
        assert all(scene.objects[b].color == block_color and len(task.object_points[b]) == 27 for b in goal.objects)
        xy = np.array([scene.pose(b)[0][:2] for b in goal.objects])
        assert np.all((xy >= np.array(sp.PILE_XY)[:, 0] - 0.01) & (xy <= np.array(sp.PILE_XY)[:, 1] + 0.01))
        centres = np.array([scene.pose(z)[0][:2] for z in zones.values()])
        assert np.linalg.norm(centres[0] - centres[1]) > 0.2
        for zone in zones.values():   # zones are flat markers the blocks slide over
            assert p.getCollisionShapeData(zone, -1, physicsClientId=scene.client) == ()
    if palette == EVAL_COLORS:
        assert used & {"orange", "purple", "pink", "white"}


def test_zone_metric_gives_partial_credit_and_success(scene):
    task = make_task("separating-piles-seen-colors")
    task.reset(scene, np.random.default_rng(3), "train")
    goal = task.goals[0]
    zone_pose = goal.zones[0][0]
    away = np.array([0.3, 0.45]) if zone_pose[0][1] < 0 else np.array([0.3, -0.45])
    inside = [(dx, dy) for dx in np.linspace(-0.06, 0.06, 8) for dy in np.linspace(-0.06, 0.06, 7)]  # zone frame
    for i, body in enumerate(goal.objects):   # the first half inside the zone, the rest far away
        if i < len(goal.objects) // 2:
            _put(scene, body, inside[i], zone_pose)
        else:
            _put(scene, body, away + [0.012 * (i % 10), 0.012 * (i // 10)])
    assert task.reward()[1]["total_reward"] == pytest.approx(0.5) and not task.done()
    for i, body in enumerate(goal.objects):
        _put(scene, body, inside[i], zone_pose)
    total = task.reward()[1]["total_reward"]
    assert total == pytest.approx(1.0) and task.done()
    with pytest.raises(TaskError, match="already inside"):
        task.oracle(None, np.random.default_rng(0))
    _put(scene, goal.objects[0], (0.0775, 0.0), zone_pose)   # across the edge: 1 of its 3 point columns counts
    assert task.reward()[1]["total_reward"] == pytest.approx(1 - (2 / 3) / len(goal.objects))
    assert not task.done()


@pytest.mark.parametrize("name,split,seed", [("separating-piles-seen-colors", "train", 0),
                                             ("separating-piles-unseen-colors", "test", 10001),
                                             ("separating-piles-full", "val", 1)])
def test_oracle_pushes_the_pile_into_the_zone(scene, name, split, seed):
    task = make_task(name)
    task.reset(scene, np.random.default_rng([seed, 0]), split)
    rng = np.random.default_rng([seed, 1])
    totals = []
    for _ in range(task.max_steps):
        action = task.oracle(None, rng)
        result = task.execute(scene, action.pick_pose, action.place_pose)
        assert result.success, result
        totals.append(task.reward()[1]["total_reward"])
        if task.done():
            break
    assert totals[-1] > SUCCESS_THRESHOLD, totals
    assert len(totals) > 1 and totals[0] < totals[-1]      # several pushes, each earning partial credit


def test_instruction_builds_the_named_scene(scene):
    task = make_task("separating-piles-unseen-colors")
    goal = task.parse_instruction("Sweep the orange blocks into the white zone.")
    assert goal == {"pick": "orange", "place": "white"}
    lang = task.reset(scene, np.random.default_rng(5), "train", goal)
    assert lang == "push the pile of orange blocks into the white square"
    zones = _zones(scene)
    assert "white" in zones and np.allclose(task.goals[0].zones[0][0][0], scene.pose(zones["white"])[0])
    assert {scene.objects[b].color for b in task.goals[0].objects} == {"orange"}


def test_crowded_table_ends_in_a_clear_error_or_fewer_blocks(monkeypatch):
    # One 15 cm zone fits this 30 x 40 cm table, two more than 22 cm apart do not.
    small = Scene(cameras=default_cameras(0.25), bounds=np.array([[0.25, 0.55], [-0.2, 0.2], [0.0, 0.28]]))
    try:
        with pytest.raises(TaskError, match="no room for two 0.15 m zones"):
            make_task("separating-piles-seen-colors").reset(small, np.random.default_rng(0), "train")
    finally:
        small.close()
    wide = Scene(cameras=default_cameras(0.25))
    try:
        monkeypatch.setattr(sp, "PILE_SPACING", 0.08)   # only a handful of blocks fit the patch at this spacing
        task = make_task("separating-piles-seen-colors")
        task.reset(wide, np.random.default_rng(0), "train")
        assert 1 <= len(task.goals[0].objects) < 12
    finally:
        wide.close()


ACCEPTED = [
    ("push the pile of red blocks into the green square", "red", "green"),
    ("push the red blocks into the green square", "red", "green"),
    ("Sweep the pile of GREY blocks onto the blue zone.", "gray", "blue"),
    ("please slide all the yellow blocks to the cyan squares", "yellow", "cyan"),
    ("move the piles of pink block towards the white square please", "pink", "white"),
]


@pytest.mark.parametrize("instruction,block,square", ACCEPTED)
def test_grammar_accepts_paraphrases(instruction, block, square):
    assert make_task("separating-piles-seen-colors").parse_instruction(instruction) == {"pick": block, "place": square}


@pytest.mark.parametrize("instruction,fragments", [
    ("push the pile of magenta blocks into the green square", ["block colour 'magenta'", "known colours: blue"]),
    ("push the pile of red blocks into the green bowl", ["target 'bowl'", "this task knows: square, zone"]),
    ("push the pile of red blocks into the red square", ["both 'red'"]),
    ("kick the pile of red blocks into the green square", ["action 'kick'", "known actions: push"]),
    ("push the pile of red blocks", ["no preposition"]),
    ("push the pile of red blocks into the green square twice", ["extra words 'twice'"]),
])
def test_grammar_refuses_with_the_shared_message(instruction, fragments):
    with pytest.raises(ValueError) as err:
        make_task("separating-piles-seen-colors").parse_instruction(instruction)
    message = str(err.value)
    assert message.startswith("cannot ground the instruction. Understood: ") and "Not understood: " in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_example_grounds():
    assert make_task(VARIANTS[0]).parse_instruction(sp.EXAMPLE) == {"pick": "red", "place": "green"}
