import numpy as np
import pybullet as p
import pytest

from vlarm.tasks import list_tasks, make_task
from vlarm.tasks.attributes import EVAL_COLORS, TRAIN_COLORS


def test_registry_lists_and_rejects():
    assert "put-block-in-bowl-seen-colors" in list_tasks()
    with pytest.raises(ValueError, match="valid tasks: .*put-block-in-bowl-seen-colors"):
        make_task("put-blocks-in-bowl")


@pytest.mark.parametrize("variant,split,palette", [
    ("seen", "train", TRAIN_COLORS), ("seen", "test", TRAIN_COLORS),
    ("unseen", "train", TRAIN_COLORS), ("unseen", "test", EVAL_COLORS), ("unseen", "val", EVAL_COLORS)])
def test_goal_colours_follow_split(scene, variant, split, palette):
    task = make_task(f"put-block-in-bowl-{variant}-colors")
    used = set()
    for seed in range(12):
        lang = task.reset(scene, np.random.default_rng(seed), split)
        pick, place = lang.split()[2], lang.split()[-2]
        assert lang == f"put the {pick} blocks in a {place} bowl"
        assert pick in palette and place in palette and pick != place
        used |= {pick, place}
        goal = task.goals[0]
        assert 1 <= len(goal.objects) <= len(goal.targets) <= 3
        assert task.max_steps == len(goal.objects) + 1
        assert len(scene.objects) == len(goal.objects) + len(goal.targets) + 6   # six distractors
        distractor_colors = {o.color for b, o in scene.objects.items() if b not in goal.objects and
                             not (o.kind == "bowl" and o.fixed)}
        assert not distractor_colors & {pick, place}
    if palette is EVAL_COLORS:
        assert used & {"orange", "purple", "pink", "white"}


def test_partial_credit_sums_to_one(scene):
    task = make_task("put-block-in-bowl-seen-colors")
    for seed in range(50):
        task.reset(scene, np.random.default_rng(seed), "train")
        if len(task.goals[0].objects) == 2:
            break
    goal = task.goals[0]
    assert len(goal.objects) == 2
    assert task.reward()[0] == 0.0 and not task.done()
    rewards = []
    for block, bowl in zip(goal.objects, goal.targets, strict=False):
        p.resetBasePositionAndOrientation(block, bowl[0] + [0.03, 0, 0.03], [0, 0, 0, 1], physicsClientId=scene.client)
        scene.settle()
        rewards.append(task.reward()[0])
    assert rewards == pytest.approx([0.5, 0.5]) and sum(rewards) == pytest.approx(1.0)
    assert task.done()


def test_pose_metric_threshold_is_5cm(scene):
    task = make_task("put-block-in-bowl-seen-colors")
    target = (np.array([0.5, 0.0, 0.0]), np.array([0, 0, 0, 1.0]))
    assert task.is_match((np.array([0.549, 0.0, 0.02]), np.array([0, 0, 0.7, 0.7])), target, 0.0)
    assert not task.is_match((np.array([0.551, 0.0, 0.02]), np.array([0, 0, 0, 1.0])), target, 0.0)


ACCEPTED = [
    ("put the red blocks in a green bowl", "red", "green"),
    ("put blue blocks in yellow bowl", "blue", "yellow"),
    ("put blue blocks in the yellow bowl", "blue", "yellow"),
    ("Put the PINK block into the white bowl.", "pink", "white"),
    ("place all the red blocks onto an orange bowl", "red", "orange"),
    ("move all red blocks to the green bowls", "red", "green"),
    ("drop a cyan block inside a brown bowl!", "cyan", "brown"),
    ("please put the purple blocks on the white bowl", "purple", "white"),
    ("Please, put the purple blocks on the white bowl, please.", "purple", "white"),
    ("   PUT   THE   RED   BLOCKS   IN   A   GREEN   BOWL   ", "red", "green"),
    ("put the\tred blocks\nin a green bowl?!", "red", "green"),
    ("put the grey blocks in a blue bowl", "gray", "blue"),
]


@pytest.mark.parametrize("instruction,pick,place", ACCEPTED)
def test_parse_instruction_accepts_natural_variants(instruction, pick, place):
    task = make_task("put-block-in-bowl-unseen-colors")
    assert task.parse_instruction(instruction) == {"pick": pick, "place": place}


@pytest.mark.parametrize("verb", ["put", "place", "move", "drop"])
@pytest.mark.parametrize("first,second", [("", ""), ("the", "a"), ("a", "the"), ("all the", "an"), ("all", "")])
@pytest.mark.parametrize("preposition", ["in", "into", "inside", "on", "onto", "to"])
@pytest.mark.parametrize("nouns", [("block", "bowl"), ("blocks", "bowls")])
def test_parse_instruction_grammar_product(verb, first, second, preposition, nouns):
    text = f"{verb} {first} red {nouns[0]} {preposition} {second} white {nouns[1]}"
    assert make_task("put-block-in-bowl-seen-colors").parse_instruction(text) == {"pick": "red", "place": "white"}


REFUSED = [  # instruction, fragments the message must contain
    ("put the magenta blocks in a green bowl",
     ["Understood: object 'block', target 'bowl', place colour 'green'.", "Not understood: pick colour 'magenta'",
      "known colours: blue, red"]),
    ("put the red blocks in a teal bowl", ["place colour 'teal'", "pick colour 'red'"]),
    ("put the red blocks in a green plate", ["Understood: ", "pick colour 'red'", "Not understood: target 'plate'"]),
    ("put the red cylinders in a green bowl", ["object 'cylinders' (this task knows: block (or cube))"]),
    ("put the red blocks in a red bowl", ["both 'red'"]),
    ("put an orange block in an orange bowl", ["both 'orange'"]),
    ("put the red blocks near a green bowl", ["preposition 'near'", "known prepositions: in, into"]),
    ("stack the red blocks on a green bowl", ["action 'stack'", "known actions: put, place, move, drop"]),
    ("put the blocks in a green bowl", ["no pick colour"]),
    ("put the red blocks in a green bowl next to the wall", ["extra words 'next to the wall'"]),
    ("put the small red blocks in a green bowl", ["'small' before 'red'", "pick colour 'red'"]),
    ("make me a sandwich", ["Understood: nothing", "'make me a sandwich'", "expected the form"]),
    ("", ["Understood: nothing", "an empty instruction", "expected the form"]),
    ("   please   ", ["an empty instruction"]),
]


@pytest.mark.parametrize("instruction,fragments", REFUSED)
def test_parse_instruction_refusals_name_the_word(instruction, fragments):
    task = make_task("put-block-in-bowl-unseen-colors")
    with pytest.raises(ValueError) as err:
        task.parse_instruction(instruction)
    message = str(err.value)
    assert message.startswith("cannot ground the instruction. Understood: ") and "Not understood: " in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("instruction", [
    "x" * 10_000,
    "put the red blocks in a green bowl " + "y" * 10_000,
    "put the " + "m" * 10_000 + " blocks in a green bowl",
    "put the red blocks in a green bowl " + "again " * 2_000,
])
def test_parse_instruction_long_input_is_echoed_short(instruction):
    with pytest.raises(ValueError, match="\u2026") as err:
        make_task("put-block-in-bowl-seen-colors").parse_instruction(instruction)
    longest_echo = max(len(run) for run in str(err.value).split("'")[1::2])
    assert longest_echo <= 100 and len(str(err.value)) < 600, str(err.value)
