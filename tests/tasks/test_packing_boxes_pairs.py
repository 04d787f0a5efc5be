"""packing-boxes-pairs: k-d cells, colours per split, block sizes, the zone metric, oracle, undo, grammar, crowding."""

import numpy as np
import pybullet as p
import pytest

from vlarm.tasks import family_example, list_families, make_task
from vlarm.tasks.attributes import ALL_COLORS, EVAL_COLORS, TRAIN_COLORS
from vlarm.tasks.base import Task
from vlarm.tasks.packing import split_cells
from vlarm.tasks.packing_boxes_pairs import BLOCK_HEIGHT, MAX_STEPS, N_DISTRACTORS
from vlarm.tasks.routing import route

VARIANTS = ("seen", "unseen", "full")


def _name(variant: str) -> str:
    return f"packing-boxes-pairs-{variant}{'-colors' if variant != 'full' else ''}"


def _blocks(task):
    goal = set(task.goals[0].objects)
    blocks = [(b, o) for b, o in task.scene.objects.items() if o.kind == "block"]
    return [(b, o) for b, o in blocks if b in goal], [(b, o) for b, o in blocks if b not in goal]


def test_registry_and_example():
    assert list_families()["packing-boxes-pairs"] == [_name("full"), _name("seen"), _name("unseen")]
    assert route(family_example("packing-boxes-pairs")).task == _name("seen")


@pytest.mark.parametrize("seed", range(6))
def test_split_cells_tile_the_box_with_gaps(seed):
    rng = np.random.default_rng(seed)
    size = rng.uniform(0.05, 0.3, 2)
    cells = split_cells(rng, size, 0.05, 0.01)
    for cell in cells:
        extent = cell[2:] - cell[:2]
        assert np.all(extent > 0) and np.all(extent <= 0.1 + 1e-9)
        assert np.all(cell[:2] >= -size / 2 + 0.01 - 1e-9) and np.all(cell[2:] <= size / 2 - 0.01 + 1e-9)
    for i, a in enumerate(cells):
        for b in cells[i + 1:]:
            gap = np.maximum(a[:2] - b[2:], b[:2] - a[2:])
            assert gap.max() >= 0.01 - 1e-9
    inner = np.prod(size - 0.02)
    assert sum(np.prod(c[2:] - c[:2]) for c in cells) > 0.5 * inner   # cells fill most of the floor
    with pytest.raises(ValueError, match="no room"):
        split_cells(rng, (0.015, 0.2), 0.05, 0.01)


@pytest.mark.parametrize("variant,split,palette", [
    ("seen", "train", TRAIN_COLORS), ("seen", "test", TRAIN_COLORS), ("unseen", "train", TRAIN_COLORS),
    ("unseen", "val", EVAL_COLORS), ("unseen", "test", EVAL_COLORS), ("full", "test", ALL_COLORS)])
def test_colours_and_blocks_follow_the_split(scene, variant, split, palette):
    task = make_task(_name(variant))
    used, n_distractors = set(), 0
    for seed in range(5):
        lang = task.reset(scene, np.random.default_rng(seed), split)
        colors = [c for _, c in task.goal_attributes.values()]
        assert lang == f"pack all the {' and '.join(colors)} blocks into the brown box"
        assert set(colors) <= set(palette) and len(colors) == len(set(colors)) and task.max_steps == MAX_STEPS
        goal_blocks, distractors = _blocks(task)
        assert {o.color for _, o in goal_blocks} == set(colors)
        assert len(colors) == min(2, len(goal_blocks))              # a pair of colours whenever two blocks fit
        assert len(distractors) <= N_DISTRACTORS                   # fewer only when the table is crowded
        n_distractors += len(distractors)
        assert all(o.color in palette and o.color not in colors for _, o in distractors)
        for _, o in goal_blocks + distractors:
            assert o.size[2] == pytest.approx(BLOCK_HEIGHT) and 0.03 - 1e-9 <= min(o.size[:2])
            assert max(o.size[:2]) <= 0.1 + 1e-9
        # every goal block's target is in the box and the block fits there with the 1 cm gaps
        goal = task.goals[0]
        assert goal.metric == "zone" and np.array_equal(goal.matches, np.eye(len(goal.objects), dtype=bool))
        for body, target in zip(goal.objects, goal.targets, strict=True):
            p.resetBasePositionAndOrientation(body, list(target[0] + [0, 0, BLOCK_HEIGHT / 2]), list(target[1]),
                                              physicsClientId=scene.client)
        assert task.progress_now()[0] == pytest.approx(1.0)
        used |= set(colors)
    assert n_distractors >= 3 * 5
    if palette is EVAL_COLORS:
        assert used - set(TRAIN_COLORS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_oracle_packs_the_blocks(scene, variant):
    task = make_task(_name(variant))
    for seed in (1, 2):
        task.reset(scene, np.random.default_rng(seed), "test")
        task.solve(scene, np.random.default_rng(seed))
        assert task.progress > 0.99 and task.done(), (variant, seed)


def test_partial_credit_and_undo(scene):
    task = make_task(_name("seen"))
    for seed in range(20):
        task.reset(scene, np.random.default_rng(seed), "train")
        if len(task.goals[0].objects) >= 2:
            break
    goal = task.goals[0]
    n = len(goal.objects)
    assert n >= 2 and task.reward()[0] == 0.0
    body, target = goal.objects[0], goal.targets[0]
    p.resetBasePositionAndOrientation(body, list(target[0] + [0, 0, BLOCK_HEIGHT / 2]), list(target[1]),
                                      physicsClientId=scene.client)
    scene.settle()
    assert task.reward()[0] == pytest.approx(1 / n) and not task.done()
    p.resetBasePositionAndOrientation(body, [5.0, 5.0, BLOCK_HEIGHT / 2], [0, 0, 0, 1], physicsClientId=scene.client)
    assert task.reward()[0] == pytest.approx(-1 / n) and task.progress == pytest.approx(0.0) and not task.done()


ACCEPTED = [
    ("pack all the red and blue blocks into the brown box", {"color 1": "red", "color 2": "blue"}),
    ("pack the green blocks in the box", {"color 1": "green"}),
    ("Put all red and the grey boxes inside the brown container.", {"color 1": "red", "color 2": "gray"}),
    ("please place all the orange and white cubes into the box", {"color 1": "orange", "color 2": "white"}),
]


@pytest.mark.parametrize("instruction,goal", ACCEPTED)
def test_grammar_accepts(instruction, goal):
    assert make_task(_name("full")).parse_instruction(instruction) == goal
    assert route(instruction).family == "packing-boxes-pairs"


REFUSED = [
    ("pack all the red and red blocks into the brown box", ["both 'red'"]),
    ("pack all the magenta blocks into the brown box", ["first colour 'magenta'", "known colours: blue"]),
    ("pack all the red and blue bowls into the brown box", ["object 'bowls'", "first colour 'red'"]),
    ("pack all the red and blue blocks onto the brown box", ["preposition 'onto'"]),
    ("pack all the blocks into the brown box", ["no first colour"]),
]


@pytest.mark.parametrize("instruction,fragments", REFUSED)
def test_grammar_refusals_name_the_word(instruction, fragments):
    with pytest.raises(ValueError) as err:
        make_task(_name("seen")).parse_instruction(instruction)
    message = str(err.value)
    assert message.startswith("cannot ground the instruction. Understood: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_grounded_instruction_builds_that_goal(scene):
    task = make_task(_name("unseen"))
    goal = task.parse_instruction("pack all the orange and yellow blocks into the brown box")
    for seed in range(4):
        lang = task.reset(scene, np.random.default_rng(seed), "test", goal)
        assert lang == "pack all the orange and yellow blocks into the brown box"
        assert {o.color for _, o in _blocks(task)[0]} == {"orange", "yellow"}
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        task.reset(scene, np.random.default_rng(0), "test", {"color 1": "teal"})


def test_crowded_table_ends_with_fewer_blocks(scene, monkeypatch):
    task = make_task(_name("seen"))
    original = Task.sample_pose
    calls = {"n": 0}

    def crowded(self, rng, radius, placed, attempts=100):
        calls["n"] += 1
        return original(self, rng, radius, placed, attempts) if calls["n"] <= 3 else None   # box, two blocks

    monkeypatch.setattr(Task, "sample_pose", crowded)
    for seed in range(10):
        calls["n"] = 0
        task.reset(scene, np.random.default_rng(seed), "test")
        goal_blocks, distractors = _blocks(task)
        assert 1 <= len(goal_blocks) and len(goal_blocks) + len(distractors) <= 2
        assert sorted(task.goals[0].objects) == sorted(b for b, _ in goal_blocks)
