"""align-rope: the rope asset, targets along one side of the square, the mirrored pose metric, the oracle with its
low-carry primitive, bounded resets and the grammar."""

import numpy as np
import pybullet as p
import pytest

from vlarm.sim import Scene, default_cameras, pick_place, xyz_to_pixel
from vlarm.sim.rope import create_rope
from vlarm.tasks import align_rope as ar
from vlarm.tasks import list_families, make_task
from vlarm.tasks.base import SUCCESS_THRESHOLD


def _lay(scene, beads, points):
    """Teleport the beads onto ``points`` (xy, metres; neighbours one joint length apart) and let them settle.

    Each bead's joint to the next sits on its local +z axis, so each bead is turned to point +z at the next one.
    """
    points = np.asarray(points, dtype=np.float64)
    for i, (bead, xy) in enumerate(zip(beads, points, strict=True)):
        d = points[min(i + 1, len(points) - 1)] - points[max(min(i, len(points) - 2), 0)]
        d = d / np.linalg.norm(d)
        axis = np.array([-d[1], d[0], 0.0]) * np.sin(np.pi / 4)       # turns +z onto the horizontal d
        p.resetBasePositionAndOrientation(bead, [xy[0], xy[1], ar.BEAD_HALF], [*axis, np.cos(np.pi / 4)],
                                          physicsClientId=scene.client)
        p.resetBaseVelocity(bead, [0, 0, 0], [0, 0, 0], physicsClientId=scene.client)
    scene.settle()


def test_registered_as_one_task():
    assert list_families()["align-rope"] == ["align-rope"]
    task = make_task("align-rope")
    assert task.family == "align-rope" and task.max_steps == 20 and task.pos_eps == 0.02


def test_rope_is_a_chain_that_holds_together(scene):
    scene.reset()
    rope = create_rope(scene.client, (0.5, 0.0, 0.05), 8, 0.015, (1, 1, 1), (1, 0, 0))
    assert len(rope.beads) == 8 and len(rope.joints) == 7 and rope.length() == pytest.approx(7 * 0.015)
    scene.step(480)
    gaps = np.linalg.norm(np.diff(rope.positions(scene.client), axis=0), axis=1)
    assert np.allclose(gaps, 0.015, atol=0.002), gaps          # dropped, tangled, but not torn apart
    assert np.all(rope.positions(scene.client)[:, 2] < 0.03)   # it fell onto the table
    with pytest.raises(ValueError, match="at least 2 beads"):
        create_rope(scene.client, (0.5, 0.0, 0.05), 1, 0.015, (1, 1, 1), (1, 0, 0))
    with pytest.raises(ValueError, match="must exceed the bead size"):
        create_rope(scene.client, (0.5, 0.0, 0.05), 5, 0.008, (1, 1, 1), (1, 0, 0))


def test_targets_lie_along_the_named_side(scene):
    task = make_task("align-rope")
    seen = set()
    for seed in range(12):
        lang = task.reset(scene, np.random.default_rng(seed), "test")
        direction = lang.removeprefix("align the rope from ")
        assert direction in {phrase for phrase, _, _ in ar.DIRECTIONS}
        seen.add(direction)
        goal = task.goals[0]
        assert len(goal.objects) == ar.N_BEADS and goal.metric == "pose" and not goal.replace
        targets = np.array([t[0] for t in goal.targets])
        steps = np.diff(targets[:, :2], axis=0)
        assert np.allclose(np.linalg.norm(steps, axis=1), ar.BEAD_SPACING)   # evenly spaced on a straight line
        assert np.allclose(steps, steps[0])
        square = next(b for b, o in scene.objects.items() if o.kind == "square")
        centre = scene.pose(square)[0][:2]
        # The side's midpoint is half a side from the square's centre, the side as long as the straight rope.
        assert np.linalg.norm(targets[:, :2].mean(0) - centre) == pytest.approx(ar.SQUARE_SIDE / 2, abs=1e-6)
        assert np.linalg.norm(targets[-1, :2] - targets[0, :2]) == pytest.approx((ar.N_BEADS - 1) * ar.BEAD_SPACING)
        b = scene.bounds
        assert np.all((targets[:, :2] > b[:2, 0]) & (targets[:, :2] < b[:2, 1]))
    assert len(seen) >= 3


def test_the_open_side_is_the_front(scene):
    task = make_task("align-rope")
    task.reset(scene, np.random.default_rng(0), "train", {"direction": "front left tip to front right tip"})
    square = next(b for b, o in scene.objects.items() if o.kind == "square")
    strips = p.getVisualShapeData(square, physicsClientId=scene.client)
    assert len(strips) == 3                                   # back, left and right; no front strip
    front_mid = np.array([t[0] for t in task.goals[0].targets])[:, :2].mean(0)
    strip_mids = [np.asarray(s[5][:2]) for s in strips]       # strip centres in the square's frame
    local_front = np.array([0.0, ar.SQUARE_SIDE / 2])
    assert all(np.linalg.norm(m - local_front) > 0.1 for m in strip_mids)
    assert np.linalg.norm(front_mid - scene.pose(square)[0][:2]) == pytest.approx(ar.SQUARE_SIDE / 2, abs=1e-6)


def test_pose_metric_per_bead_either_way_round(scene):
    task = make_task("align-rope")
    task.reset(scene, np.random.default_rng(4), "train")
    goal = task.goals[0]
    targets = np.array([t[0][:2] for t in goal.targets])
    _lay(scene, goal.objects, targets)
    assert task.reward()[1]["total_reward"] == pytest.approx(1.0) and task.done()
    _lay(scene, goal.objects, targets[::-1])                   # the rope turned end for end still counts
    assert task.reward()[1]["total_reward"] == pytest.approx(1.0)
    normal = np.array([-(targets[1] - targets[0])[1], (targets[1] - targets[0])[0]]) / ar.BEAD_SPACING
    _lay(scene, goal.objects, targets + 0.03 * normal)         # parallel but 3 cm off: nothing counts
    assert task.reward()[1]["total_reward"] == pytest.approx(0.0) and not task.done()
    along = (targets[1] - targets[0]) / ar.BEAD_SPACING
    fold = 0.3 * along + normal
    fold /= np.linalg.norm(fold)
    bent = targets.copy()                                      # beads 0-4 folded away at bead 5: 15 of 20 count
    bent[:5] = targets[5] + ar.BEAD_SPACING * np.arange(5, 0, -1)[:, None] * fold
    _lay(scene, goal.objects, bent)
    assert task.reward()[1]["total_reward"] == pytest.approx(0.75) and not task.done()


def test_low_carry_drags_the_rope_along_the_table(scene):
    task = make_task("align-rope")
    task.reset(scene, np.random.default_rng(6), "train")
    beads = task.goals[0].objects
    line = np.array([0.45, -0.15]) + np.arange(ar.N_BEADS)[:, None] * [0.0, ar.BEAD_SPACING]
    _lay(scene, beads, line)                                   # a straight rope along +y
    first, second = scene.pose(beads[0])[0], scene.pose(beads[1])[0]
    goal_xy = first[:2] + [0.0, -0.1]                          # pull its end 10 cm further out along the line
    heights = []
    scene.frame_callback, scene.frame_every = (lambda s: heights.append(s.pose(beads[0])[0][2])), 4
    try:
        result = task.execute(scene, (first + [0, 0, ar.BEAD_HALF], np.array([0, 0, 0, 1.0])),
                              (np.array([goal_xy[0], goal_xy[1], ar.BEAD_HALF]), np.array([0, 0, 0, 1.0])))
    finally:
        scene.frame_callback, scene.frame_every = None, 24
    assert result.success and result.grasped_body == beads[0], result
    assert np.linalg.norm(scene.pose(beads[0])[0][:2] - goal_xy) < 0.01
    assert max(heights) < ar.CARRY_HEIGHT + 0.015               # slid low (the default primitive lifts 20 cm)
    assert scene.pose(beads[1])[0][1] < second[1] - 0.07       # and the rope followed it


def test_default_pick_place_still_lifts_high(scene):
    scene.reset()
    block = scene.add_block((np.array([0.45, 0.1, 0.0]), np.array([0, 0, 0, 1.0])), (1, 0, 0), "red")
    heights = []
    scene.frame_callback, scene.frame_every = (lambda s: heights.append(s.pose(block)[0][2])), 4
    try:
        result = pick_place(scene, (np.array([0.45, 0.1, 0.04]), np.array([0, 0, 0, 1.0])),
                            (np.array([0.45, -0.1, 0.04]), np.array([0, 0, 0, 1.0])))
    finally:
        scene.frame_callback, scene.frame_every = None, 24
    assert result.success and max(heights) > 0.15


@pytest.mark.parametrize("split,seed", [("train", 0), ("test", 10001), ("val", 3)])
def test_oracle_aligns_the_rope(scene, split, seed):
    task = make_task("align-rope")
    task.reset(scene, np.random.default_rng([seed, 0]), split)
    steps = task.solve(scene, np.random.default_rng([seed, 1]))
    assert all(result.success for _, result in steps)
    assert task.progress > SUCCESS_THRESHOLD


def test_oracle_moves_the_ends_first(scene):
    task = make_task("align-rope")
    task.reset(scene, np.random.default_rng(7), "train")
    goal = task.goals[0]
    obs = scene.observe()
    action = task.oracle(obs, np.random.default_rng(0))
    picked = obs.segmentation[tuple(xyz_to_pixel(action.pick_pose[0], scene.bounds, scene.pixel_size))]
    assert picked in (goal.objects[0], goal.objects[-1])
    ends = np.array([t[0][:2] for t in (goal.targets[0], goal.targets[-1])])
    assert np.min(np.linalg.norm(ends - action.place_pose[0][:2], axis=1)) < 0.02


def test_a_table_too_small_for_the_square_is_a_clear_error():
    small = Scene(cameras=default_cameras(0.25), bounds=np.array([[0.25, 0.65], [-0.2, 0.2], [0.0, 0.28]]))
    try:
        with pytest.raises(ValueError, match="does not fit the workspace"):
            make_task("align-rope").reset(small, np.random.default_rng(0), "train")
    finally:
        small.close()


@pytest.mark.parametrize("instruction,direction", [
    ("align the rope from front left tip to front right tip", "front left tip to front right tip"),
    ("align the rope from front right tip to front left tip", "front left tip to front right tip"),
    ("Straighten the cable from the back left corner to the front left tip.", "front left tip to back left corner"),
    ("please lay the rope between back right and back left", "back right corner to back left corner"),
    ("align rope from front right end to back right corner", "front right tip to back right corner"),
])
def test_grammar_accepts_paraphrases(instruction, direction):
    assert make_task("align-rope").parse_instruction(instruction) == {"direction": direction}


@pytest.mark.parametrize("instruction,fragments", [
    ("align the rope from front left tip to back right corner", ["is a diagonal", "sides: front left tip"]),
    ("align the rope from front left tip to front left corner", ["both 'front left'"]),
    ("align the rope from middle left tip to front right tip", ["'middle'"]),
    ("align the chain from front left tip to front right tip", ["object 'chain'", "rope, cable"]),
    ("tie the rope from front left tip to front right tip", ["action 'tie'", "known actions: align"]),
])
def test_grammar_refuses_with_the_shared_message(instruction, fragments):
    with pytest.raises(ValueError) as err:
        make_task("align-rope").parse_instruction(instruction)
    message = str(err.value)
    assert message.startswith("cannot ground the instruction. Understood: ") and "Not understood: " in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_instruction_builds_the_named_side(scene):
    task = make_task("align-rope")
    for phrase, start, end in ar.DIRECTIONS:
        goal = task.parse_instruction(f"align the rope from {end} to {start}")
        assert task.reset(scene, np.random.default_rng(1), "train", goal) == f"align the rope from {phrase}"
    assert task.parse_instruction(ar.EXAMPLE) == {"direction": ar.DIRECTIONS[0][0]}
