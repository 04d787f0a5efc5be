"""packing-{seen,unseen}-objects-{seq,group}: name splits, goals, oracle, undo, grammar, slot layout, crowding."""

import numpy as np
import pybullet as p
import pytest

from vlarm.sim.objects import OBJECT_NAMES
from vlarm.tasks import family_example, list_families, make_task
from vlarm.tasks.attributes import EVAL_OBJECTS, TRAIN_OBJECTS
from vlarm.tasks.base import Task, TaskError
from vlarm.tasks.packing import shelf_layout
from vlarm.tasks.packing_objects import plural
from vlarm.tasks.routing import route

TASKS = [f"packing-{v}-objects-{k}" for v in ("seen", "unseen") for k in ("seq", "group")]


def _names_in_scene(task) -> list[str]:
    return [o.kind for o in task.scene.objects.values() if o.kind != "box"]


def test_registry_has_both_families_without_full_variants():
    families = list_families()
    assert families["packing-objects-seq"] == ["packing-seen-objects-seq", "packing-unseen-objects-seq"]
    assert families["packing-objects-group"] == ["packing-seen-objects-group", "packing-unseen-objects-group"]
    assert route(family_example("packing-objects-seq")).task == "packing-seen-objects-seq"
    assert route(family_example("packing-objects-group")).task == "packing-seen-objects-group"


@pytest.mark.parametrize("task_name", TASKS)
@pytest.mark.parametrize("split,names", [("train", TRAIN_OBJECTS), ("val", EVAL_OBJECTS), ("test", EVAL_OBJECTS)])
def test_names_follow_the_split(scene, task_name, split, names):
    task = make_task(task_name)
    seen = task_name.startswith("packing-seen")
    allowed = set(OBJECT_NAMES) if seen else set(names)
    used = set()
    for seed in range(4):
        task.reset(scene, np.random.default_rng(seed), split)
        in_scene = _names_in_scene(task)
        assert set(in_scene) <= allowed and 4 <= len(in_scene) <= 6
        assert {v for kind, v in task.goal_attributes.values()} <= allowed
        assert all(kind == "object" for kind, _ in task.goal_attributes.values())
        used |= set(in_scene)
    if seen:   # the seen variants draw from all 56 names on every split
        assert used & set(TRAIN_OBJECTS) and used & set(EVAL_OBJECTS)


def test_seq_packs_one_object_per_goal_in_order(scene):
    task = make_task("packing-seen-objects-seq")
    for seed in range(20):
        task.reset(scene, np.random.default_rng(seed), "train")
        if len(task.goals) >= 2:
            break
    k = len(task.goals)
    names = [name for _, name in task.goal_attributes.values()]
    assert k >= 2 and task.max_steps == k + 1 and len(set(names)) == k
    assert [g.instruction for g in task.goals] == [f"pack the {n} in the brown box" for n in names]
    assert task.lang_goal == task.instruction_now() == task.goals[0].instruction
    for g in task.goals:
        assert g.metric == "zone" and len(g.objects) == 1 and g.max_reward == pytest.approx(1 / k)
        assert task.scene.objects[g.objects[0]].kind in names
    assert len(set(_names_in_scene(task))) == len(_names_in_scene(task))   # distinct names in seq scenes
    rng = np.random.default_rng(0)
    action = task.oracle(scene.observe(), rng)
    task.execute(scene, action.pick_pose, action.place_pose)
    reward, info = task.reward()
    assert reward == pytest.approx(1 / k, abs=0.01) and info["goals_left"] == k - 1
    assert task.instruction_now() == task.goals[1].instruction


def test_group_packs_every_object_of_the_goal_name(scene):
    task = make_task("packing-unseen-objects-group")
    for seed in range(5):
        lang = task.reset(scene, np.random.default_rng(seed), "test")
        (kind, name), = task.goal_attributes.values()
        assert lang == f"pack all the {name} objects in the brown box"
        in_scene = _names_in_scene(task)
        goal = task.goals[0]
        assert sorted(goal.objects) == sorted(b for b, o in task.scene.objects.items() if o.kind == name)
        assert in_scene.count(name) >= 2 and task.max_steps == len(goal.objects) + 1
        others = [n for n in in_scene if n != name]
        assert max(others.count(n) for n in set(others)) >= 2          # a distractor name appears twice
        assert np.array_equal(goal.matches, np.eye(len(goal.objects), dtype=bool))


@pytest.mark.parametrize("task_name", TASKS)
def test_oracle_packs_the_objects(scene, task_name):
    task = make_task(task_name)
    for seed in (3, 4):
        task.reset(scene, np.random.default_rng(seed), "test")
        task.solve(scene, np.random.default_rng(seed))
        assert task.progress > 0.99 and task.done(), (task_name, seed)
        box = [b for b, o in task.scene.objects.items() if o.kind == "box"][0]
        zone = task.goals[0].zones[0]
        assert np.allclose(zone[0][0], task.scene.pose(box)[0])


def test_taking_a_packed_object_out_undoes_its_goal(scene):
    task = make_task("packing-seen-objects-seq")
    for seed in range(20):
        task.reset(scene, np.random.default_rng(seed), "test")
        if len(task.goals) >= 2:
            break
    k = len(task.goals)
    task.solve(scene, np.random.default_rng(0))
    assert task.done() and task.progress > 0.99
    body = task.goals[0].objects[0]
    box_xy = task.goals[0].zones[0][0][0][:2]
    far = np.array([0.3, -0.45 if box_xy[1] > 0 else 0.45, 0.0])       # a table corner away from the box
    p.resetBasePositionAndOrientation(body, far.tolist(), [0, 0, 0, 1], physicsClientId=scene.client)
    scene.settle()
    reward, info = task.reward()
    assert not task.done() and reward == pytest.approx(-1 / k, abs=0.01) and info["goals_left"] == k
    assert task.instruction_now() == task.goals[0].instruction       # the first goal is asked for again
    action = task.oracle(scene.observe(), np.random.default_rng(1))
    task.execute(scene, action.pick_pose, action.place_pose)
    assert task.reward()[0] == pytest.approx(1 / k, abs=0.01) and task.done()


def test_grounded_instruction_builds_that_goal(scene):
    seq, group = make_task("packing-unseen-objects-seq"), make_task("packing-seen-objects-group")
    goal = seq.parse_instruction("pack the hammer in the brown box")
    for seed in range(3):
        assert seq.reset(scene, np.random.default_rng(seed), "train", goal) == "pack the hammer in the brown box"
        assert len(seq.goals) == 1 and seq.scene.objects[seq.goals[0].objects[0]].kind == "hammer"
    goal = group.parse_instruction("pack all the tennis balls in the box")
    for seed in range(3):
        lang = group.reset(scene, np.random.default_rng(seed), "test", goal)
        assert lang == "pack all the tennis ball objects in the brown box"
        assert {group.scene.objects[b].kind for b in group.goals[0].objects} == {"tennis ball"}
    with pytest.raises(ValueError, match="unknown object 'spork'"):
        seq.reset(scene, np.random.default_rng(0), "test", {"object": "spork"})


SEQ_ACCEPTED = [
    ("pack the rubber duck in the brown box", "rubber duck"),
    ("Pack the HAMMER into the box.", "hammer"),
    ("please put a yo-yo inside the brown container", "yo-yo"),
    ("move the butter knife in brown box", "butter knife"),
    ("place toy school bus into the box please", "toy school bus"),
]
GROUP_ACCEPTED = [
    ("pack all the mug objects in the brown box", "mug"),
    ("pack all the mugs in the box", "mug"),
    ("put all of the butter knives into the brown box", "butter knife"),
    ("Pack every computer mouse inside the container!", "computer mouse"),
    ("move all dice objects into the box", "dice"),
    ("pack all the toy bunnies in the brown box", "toy bunny"),
]


@pytest.mark.parametrize("instruction,name", SEQ_ACCEPTED)
def test_seq_grammar_accepts(instruction, name):
    assert make_task("packing-seen-objects-seq").parse_instruction(instruction) == {"object": name}
    assert route(instruction).family == "packing-objects-seq"


@pytest.mark.parametrize("instruction,name", GROUP_ACCEPTED)
def test_group_grammar_accepts(instruction, name):
    assert make_task("packing-unseen-objects-group").parse_instruction(instruction) == {"object": name}
    assert route(instruction).family == "packing-objects-group"


REFUSED = [  # (task, instruction, fragments of the message)
    ("seq", "pack the spork in the brown box", ["object 'spork'", "known objects include: mug"]),
    ("seq", "pack the mugs in the brown box", ["object 'mugs'"]),
    ("seq", "pack all the mug objects in the brown box", ["expected the form 'pack the <object> in the brown box'"]),
    ("seq", "pack the mug in the red box", ["Understood: object 'mug'", "'red' before 'box'"]),
    ("seq", "pack the mug on the brown box", ["preposition 'on'", "known prepositions: in, into, inside"]),
    ("seq", "throw the mug in the brown box", ["action 'throw'", "known actions: pack, put, place, move"]),
    ("group", "pack the mug objects in the brown box", ["no all", "expected the form"]),
    ("group", "pack all the sporks in the brown box", ["object 'sporks'"]),
    ("group", "pack all the mug objects in the brown box next to the bowl", ["extra words 'next to the bowl'"]),
]


@pytest.mark.parametrize("kind,instruction,fragments", REFUSED)
def test_grammar_refusals_name_the_word(kind, instruction, fragments):
    with pytest.raises(ValueError) as err:
        make_task(f"packing-seen-objects-{kind}").parse_instruction(instruction)
    message = str(err.value)
    assert message.startswith("cannot ground the instruction. Understood: ") and len(message) < 600
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("name,expected", [("mug", "mugs"), ("butter knife", "butter knives"), ("dice", "dice"),
                                           ("battery", "batteries"), ("paint brush", "paint brushes"),
                                           ("yo-yo", "yo-yos"), ("magnifying glass", "magnifying glasses"),
                                           ("computer mouse", "computer mice"), ("key", "keys")])
def test_plural(name, expected):
    assert plural(name) == expected


def test_plurals_never_collide_with_another_name():
    plurals = {plural(n): n for n in OBJECT_NAMES}
    assert len(plurals) == len(OBJECT_NAMES)
    assert all(plurals.get(n, n) == n for n in OBJECT_NAMES)


def test_shelf_layout_keeps_clearance_between_slots_and_walls():
    rng = np.random.default_rng(0)
    for n in range(1, 6):
        sizes = rng.uniform(0.03, 0.12, (n, 2))
        slots, (w, d) = shelf_layout(sizes, 0.012)
        lo, hi = slots - sizes / 2, slots + sizes / 2
        assert np.all(lo >= [-w / 2 + 0.0119, -d / 2 + 0.0119]) and np.all(hi <= [w / 2 - 0.0119, d / 2 - 0.0119])
        for i in range(n):
            for j in range(i + 1, n):
                gap = np.maximum(lo[i] - hi[j], lo[j] - hi[i])
                assert gap.max() >= 0.0119, (sizes, slots)
        assert max(w, d) <= max(sizes.sum(0).max() + 0.012 * (n + 1), sizes.max() + 0.024) + 1e-9
    with pytest.raises(ValueError, match="at least one"):
        shelf_layout([], 0.01)


def test_crowded_table_ends_with_fewer_objects_or_a_clear_error(scene, monkeypatch):
    task = make_task("packing-seen-objects-group")
    original = Task.sample_pose
    calls = {"n": 0}

    def crowded(self, rng, radius, placed, attempts=100):
        calls["n"] += 1
        return original(self, rng, radius, placed, attempts) if calls["n"] <= 2 else None   # box and one object

    monkeypatch.setattr(Task, "sample_pose", crowded)
    task.reset(scene, np.random.default_rng(0), "test")
    assert len(_names_in_scene(task)) == 1 and len(task.goals[0].objects) == 1 and task.max_steps == 2
    calls["n"] = -10**9
    monkeypatch.setattr(Task, "sample_pose", lambda self, rng, radius, placed, attempts=100:
                        original(self, rng, radius, placed, attempts) if not placed else None)
    with pytest.raises(TaskError, match="no room for any object"):
        task.reset(scene, np.random.default_rng(0), "test")
