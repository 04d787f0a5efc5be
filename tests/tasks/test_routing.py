"""Instruction routing: the family whose grammar grounds an instruction, and the variant its values need."""

from __future__ import annotations

import pytest

from vlarm.tasks import family_example, list_families, make_task, routing
from vlarm.tasks.routing import RoutingError, route


@pytest.mark.parametrize("family", list(list_families()))
def test_every_family_example_routes_to_its_family(family):
    routed = route(family_example(family))
    assert routed.family == family
    assert routed.task in list_families()[family]
    make_task(routed.task).parse_instruction(family_example(family))   # the chosen variant grounds it too


@pytest.mark.parametrize("instruction,task", [
    ("put the red blocks in a green bowl", "put-block-in-bowl-seen-colors"),         # train colours
    ("put the orange blocks in a purple bowl", "put-block-in-bowl-unseen-colors"),   # eval-only colours
    ("put the orange blocks in a red bowl", "put-block-in-bowl-unseen-colors"),      # eval + shared colour
    ("put the orange blocks in a yellow bowl", "put-block-in-bowl-full"),            # eval-only + train-only
])
def test_variant_follows_the_attribute_values(instruction, task):
    assert route(instruction).task == task


@pytest.mark.parametrize("instruction,fragments", [
    ("make me a sandwich", ["cannot ground the instruction 'make me a sandwich'", "no task family understands it"]),
    ("", ["an empty instruction"]),
])
def test_unknown_instructions_list_every_family_with_an_example(instruction, fragments):
    with pytest.raises(RoutingError) as err:
        route(instruction)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    for family in list_families():
        assert f"{family}: '{family_example(family)}'" in message


def test_a_near_miss_gets_the_closest_familys_own_message_short():
    with pytest.raises(RoutingError) as err:
        route("put the magenta blocks in a green bowl")
    message = str(err.value)
    assert message.startswith("cannot ground the instruction. Understood: object 'block', target 'bowl', place "
                              "colour 'green'. Not understood: pick colour 'magenta'"), message
    assert "(closest task family: put-block-in-bowl;" in message and "`vlarm tasks`" in message
    assert "align-rope" not in message   # the other families are one command away, not listed here


@pytest.mark.parametrize("instruction,typo,guess", [
    ("put the red blokcs in a green bowl", "blokcs", "blocks"),
    ("put the gren blocks in a red bowl", "gren", "green"),
    ("put the red blocks in a green bwol", "bwol", "bowl"),
    ("stack the blocks into a pyramdi", "pyramdi", "pyramid"),
    ("pack the spatual in the brown box", "spatual", "spatula"),
    ("put the rde blocks in a green bowl", "rde", "red"),      # swapped letters of a short word
    ("put the red blocks in a green bolw", "bolw", "bowl"),
])
def test_a_misspelt_word_gets_a_did_you_mean(instruction, typo, guess):
    with pytest.raises(RoutingError) as err:
        route(instruction)
    assert f"'{typo}' (did you mean '{guess}'? " in str(err.value), str(err.value)


@pytest.mark.parametrize("instruction,task,goal", [
    ("put the red cubes in a green bowl", "put-block-in-bowl-seen-colors", {"pick colour": "red"}),
    ("stack the cubes into a pyramid", "stack-block-pyramid-seq-seen-colors", None),
    ("push the pile of red cubes into the green square", "separating-piles-seen-colors", None),
    ("pack all the red and blue cubes into the brown box", "packing-boxes-pairs-seen-colors", None),
    ("pack the duck in the brown box", "packing-seen-objects-seq", {"object": "rubber duck"}),
    ("pack all the ducks in the brown box", "packing-seen-objects-group", {"object": "rubber duck"}),
    ("pack the bear in the box", "packing-seen-objects-seq", {"object": "teddy bear"}),
])
def test_noun_synonyms_and_short_object_names_ground(instruction, task, goal):
    routed = route(instruction)
    assert routed.task == task
    parsed = make_task(task).parse_instruction(instruction)
    for key, value in (goal or {}).items():
        assert any(v == value for v in parsed.values()), (key, value, parsed)


def test_two_families_grounding_one_instruction_is_ambiguous(monkeypatch):
    families = dict(list_families())
    families["copy-of-bowls"] = families["put-block-in-bowl"]
    monkeypatch.setattr(routing, "list_families", lambda: families)
    monkeypatch.setattr(routing, "family_example",
                        lambda f: family_example("put-block-in-bowl") if f == "copy-of-bowls" else family_example(f))
    with pytest.raises(RoutingError, match="ambiguous: it reads as a task of put-block-in-bowl, copy-of-bowls"):
        route("put the red blocks in a green bowl")


def test_long_input_is_echoed_short():
    with pytest.raises(RoutingError) as err:
        route("z" * 10_000)
    assert "z" * 100 not in str(err.value) and "\u2026" in str(err.value)


@pytest.mark.parametrize("instruction,family", [
    ("stack the blocks into a pyramid", "stack-block-pyramid-seq"),
    ("put the red block on the lightest brown block", "stack-block-pyramid-seq"),
    ("solve the towers of hanoi", "towers-of-hanoi-seq"),
    ("pack the star in the brown box", "packing-shapes"),
    ("pack the mug in the brown box", "packing-objects-seq"),
    ("pack all the mug objects in the brown box", "packing-objects-group"),
    ("pack all the red and blue blocks into the brown box", "packing-boxes-pairs"),
    ("put the red blocks in a green bowl", "put-block-in-bowl"),
    ("push the pile of red blocks into the green square", "separating-piles"),
    ("align the rope from front left tip to front right tip", "align-rope"),
    ("Please put the blue letter E shape in the letter E shape hole.", "assembling-kits-seq"),
])
def test_instructions_of_neighbouring_families_route_apart(instruction, family):
    assert route(instruction).family == family


@pytest.mark.parametrize("name,fragment", [
    ("put-block-in-bowl", "is a task family; pass one of its tasks: put-block-in-bowl-full, put-block-in-bowl-seen"),
    ("vlarm/put-block-in-bowl-full-v0", "is the gymnasium id of task 'put-block-in-bowl-full'"),
    ("put-block-in-bowel-seen-colors", "did you mean 'put-block-in-bowl-seen-colors'"),
    ("make-coffee", "valid tasks: align-rope"),
])
def test_task_name_errors_say_how_to_fix_them(name, fragment):
    with pytest.raises(ValueError) as err:
        make_task(name)
    assert fragment in str(err.value), str(err.value)
