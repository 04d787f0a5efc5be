"""towers-of-hanoi-seq: the solution, stand and rings, colours per split, judging along the solution path, oracle,
undo, grammar, crowding."""

import numpy as np
import pybullet as p
import pytest

from vlarm.sim import pick_place
from vlarm.sim.stands import PEG_HEIGHT, RING_HEIGHT, RING_OUTER_RADII, ring_parts
from vlarm.tasks import family_example, list_families, make_task
from vlarm.tasks.attributes import ALL_COLORS, EVAL_COLORS, TRAIN_COLORS
from vlarm.tasks.base import Task, TaskError
from vlarm.tasks.routing import route
from vlarm.tasks.towers_of_hanoi import LOCATIONS, MAX_STEPS, PICK_MIN_RADIUS, hanoi_moves, hanoi_states

VARIANTS = ("seen", "unseen", "full")
FAMILY = "towers-of-hanoi-seq"


def _name(variant: str) -> str:
    return f"{FAMILY}-{variant}{'-colors' if variant != 'full' else ''}"


def _set_state(task, state):
    """Teleport the rings into ``state`` (per peg, ring indices bottom to top) and let them settle."""
    for peg, rings in enumerate(state):
        for level, ring in enumerate(rings):
            xyz = task.pegs[peg] + [0.0, 0.0, RING_HEIGHT * (level + 0.5)]
            p.resetBasePositionAndOrientation(task.rings[ring], list(xyz), [0, 0, 0, 1],
                                              physicsClientId=task.scene.client)
    task.scene.settle()


def _clear_of_pegs(free_spot, task):
    """A table point 12 cm from every object and peg."""
    return free_spot(task.scene, 0.12, avoid=task.pegs)


def test_registry_and_example():
    assert list_families()[FAMILY] == [_name("full"), _name("seen"), _name("unseen")]
    assert route(family_example(FAMILY)).task == _name("seen")


@pytest.mark.parametrize("target", [1, 2])
def test_solution_is_optimal_and_legal(target):
    moves = hanoi_moves(3, 0, target)
    assert len(moves) == 7 and moves[0] == (0, 0, target)
    states = hanoi_states(3, moves, 0)
    assert states[0] == ((2, 1, 0), (), ()) and states[-1][target] == (2, 1, 0)
    for state in states:
        assert all(list(peg) == sorted(peg, reverse=True) for peg in state)   # never a larger ring on a smaller
    with pytest.raises(ValueError, match="two different pegs"):
        hanoi_moves(3, 1, 1)
    with pytest.raises(ValueError, match="not on top of that peg"):
        hanoi_states(3, [(1, 0, 1)], 0)


def test_ring_parts_refuse_bad_sizes():
    assert len(ring_parts(0.03, (1, 0, 0))) == 6
    with pytest.raises(ValueError, match="inner radius < outer radius"):
        ring_parts(0.01, (1, 0, 0))


@pytest.mark.parametrize("variant,split,palette", [
    ("seen", "train", TRAIN_COLORS), ("seen", "test", TRAIN_COLORS), ("unseen", "train", TRAIN_COLORS),
    ("unseen", "val", EVAL_COLORS), ("unseen", "test", EVAL_COLORS), ("full", "test", ALL_COLORS)])
def test_scene_and_colours_follow_the_split(scene, variant, split, palette):
    task = make_task(_name(variant))
    used = set()
    for seed in range(4):
        lang = task.reset(scene, np.random.default_rng(seed), split)
        assert lang == "move the rings to the darker brown side" and task.max_steps == MAX_STEPS == 14
        colors = [task.goal_attributes[f"ring{i}"][1] for i in range(3)]
        assert len(set(colors)) == 3 and set(colors) <= set(palette)
        assert [scene.objects[b].color for b in task.rings] == colors
        assert [scene.objects[b].size[0] for b in task.rings] == pytest.approx([2 * r for r in RING_OUTER_RADII])
        assert task.configuration() == (((2, 1, 0), (), ()), frozenset())   # stacked largest first, lighter side
        assert len(task.goals) == 7 and all(g.max_reward == pytest.approx(1 / 7) for g in task.goals)
        for goal, (ring, _, dst) in zip(task.goals, task.moves, strict=True):
            assert goal.objects == [task.rings[ring]]
            assert goal.instruction == f"move the {colors[ring]} ring to the {LOCATIONS[dst]}"
        assert task.progress_now() == (0.0, 0) and task.instruction_now() == task.goals[0].instruction
        used |= set(colors)
    if palette is EVAL_COLORS:
        assert used - set(TRAIN_COLORS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_oracle_solves_one_move_at_a_time(scene, variant):
    task = make_task(_name(variant))
    for seed in (3, 4):
        task.reset(scene, np.random.default_rng(seed), "test")
        shown = [instruction for instruction, _ in task.solve(scene, np.random.default_rng(seed))]
        assert task.progress > 0.99 and task.done(), (variant, seed)
        assert task.configuration() == (((), (), (2, 1, 0)), frozenset())
        assert shown == [g.instruction for g in task.goals]   # each move told once, in order, as goals are met


def test_oracle_picks_rings_clear_of_the_peg(scene):
    task = make_task(_name("seen"))
    task.reset(scene, np.random.default_rng(0), "train")
    obs, rng = scene.observe(), np.random.default_rng(0)
    for _ in range(20):
        pick = task.oracle(obs, rng).pick_pose[0]
        r = np.linalg.norm(pick[:2] - scene.pose(task.rings[0])[0][:2])
        assert PICK_MIN_RADIUS <= r <= RING_OUTER_RADII[0]


def test_progress_follows_the_solution_path(scene, free_spot):
    task = make_task(_name("seen"))
    task.reset(scene, np.random.default_rng(1), "train")
    for k in (3, 5, 7):
        _set_state(task, task.states[k])
        assert task.progress_now() == (pytest.approx(k / 7), k)
    _set_state(task, task.states[5])
    ring = task.moves[5][0]                                  # the ring of the next move, lifted off
    p.resetBasePositionAndOrientation(task.rings[ring], [*_clear_of_pegs(free_spot, task), 0.005], [0, 0, 0, 1],
                                      physicsClientId=scene.client)
    assert task.solved_moves() == 5 and task.instruction_now() == task.goals[5].instruction
    _set_state(task, ((0,), (2, 1), ()))                     # off the solution path: smallest ring on the wrong peg
    assert task.progress_now() == (0.0, 0)
    _set_state(task, ((2, 1, 0), (), ()))
    top = task.pegs[2] + [0.0, 0.0, PEG_HEIGHT + RING_HEIGHT]   # perched on a peg's tip is not on the peg
    p.resetBasePositionAndOrientation(task.rings[0], list(top), [0, 0, 0, 1], physicsClientId=scene.client)
    assert task.configuration()[1] == frozenset({0})


def test_undo_taking_the_tower_apart_drops_the_reward(scene, free_spot):
    task = make_task(_name("seen"))
    task.reset(scene, np.random.default_rng(5), "test")
    task.solve(scene, np.random.default_rng(5))
    assert task.done() and task.progress == pytest.approx(1.0)
    top = scene.pose(task.rings[0])[0]
    pick = top + [PICK_MIN_RADIUS + 0.002, 0.0, RING_HEIGHT / 2]
    spot = _clear_of_pegs(free_spot, task)
    result = pick_place(scene, (pick, np.array([0, 0, 0, 1.0])),
                        (np.array([spot[0], spot[1], RING_HEIGHT]), np.array([0, 0, 0, 1.0])))
    assert result.success, result.message
    step, info = task.reward()
    assert step == pytest.approx(-1 / 7) and info["total_reward"] == pytest.approx(6 / 7) and not task.done()
    assert task.instruction_now() == task.goals[6].instruction
    p.resetBasePositionAndOrientation(task.rings[1], [*_clear_of_pegs(free_spot, task), 0.005], [0, 0, 0, 1],
                                      physicsClientId=scene.client)
    scene.settle()                                          # the middle ring taken off too: off the solution path
    step, info = task.reward()
    assert step == pytest.approx(-6 / 7) and info["total_reward"] == pytest.approx(0.0) and not task.done()


ACCEPTED = [
    ("move the red ring to the darker brown side", {"ring0": "red", "target": "darker brown side"}),
    ("Put the ORANGE disk on the middle of the stand.", {"ring0": "orange", "target": "middle of the stand"}),
    ("please place a grey ring onto the centre of the stand", {"ring0": "gray", "target": "middle of the stand"}),
    ("move the blue ring to the lighter brown side", {"ring0": "blue"}),
    ("move the rings to the darker brown side", {"target": "darker brown side"}),
    ("transfer the whole tower to the middle", {"target": "middle of the stand"}),
    ("solve the towers of hanoi", {}),
    ("Solve the Tower of Hanoi puzzle!", {}),
]


@pytest.mark.parametrize("instruction,goal", ACCEPTED)
def test_grammar_accepts_steps_and_the_whole_task(instruction, goal):
    assert make_task(_name("full")).parse_instruction(instruction) == goal
    assert route(instruction).family == FAMILY


REFUSED = [
    ("move the magenta ring to the darker brown side", ["ring colour 'magenta'", "known colours: blue"]),
    ("move the red ring to the kitchen", ["place 'kitchen'", "known places: lighter brown side"]),
    ("move the red cube to the darker brown side", ["object 'cube'", "this task knows: ring"]),
    ("move the rings to the lighter brown side", ["start on the lighter brown side"]),
    ("solve the rubik cube", ["'solve the rubik cube'", "expected the form"]),
    ("move the red ring to the darker brown side now", ["extra words 'now'"]),
]


@pytest.mark.parametrize("instruction,fragments", REFUSED)
def test_grammar_refusals_name_the_word(instruction, fragments):
    with pytest.raises(ValueError) as err:
        make_task(_name("seen")).parse_instruction(instruction)
    message = str(err.value)
    assert message.startswith("cannot ground the instruction. Understood: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_grounded_instructions_build_that_goal(scene):
    task = make_task(_name("unseen"))
    step = "move the orange ring to the middle of the stand"
    task.reset(scene, np.random.default_rng(0), "test", task.parse_instruction(step))
    assert task.lang_goal == "move the rings to the middle of the stand"
    assert task.instruction_now() == step                   # the first move is the instruction typed
    task.solve(scene, np.random.default_rng(0))
    assert task.done() and task.configuration() == (((), (2, 1, 0), ()), frozenset())
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        task.reset(scene, np.random.default_rng(0), "test", {"ring0": "teal"})
    with pytest.raises(ValueError, match="can go to: middle of the stand, darker brown side"):
        task.reset(scene, np.random.default_rng(0), "test", {"target": "lighter brown side"})


def test_a_full_table_is_a_clear_error_not_a_loop(scene, monkeypatch):
    task = make_task(_name("seen"))
    calls = {"n": 0}

    def crowded(self, rng, radius, placed, attempts=100):
        calls["n"] += 1
        return None

    monkeypatch.setattr(Task, "sample_pose", crowded)
    with pytest.raises(TaskError, match="no free spot for the Hanoi stand"):
        task.reset(scene, np.random.default_rng(0), "test")
    assert calls["n"] == 1
