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
    ("put the magenta blocks in a green bowl", ["closest reading (put-block-in-bowl)", "pick colour 'magenta'"]),
])
def test_unknown_instructions_list_every_family_with_an_example(instruction, fragments):
    with pytest.raises(RoutingError) as err:
        route(instruction)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    for family in list_families():
        assert f"{family}: '{family_example(family)}'" in message


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
