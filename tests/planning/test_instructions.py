"""The instruction set and its goal checkers on hand-built states."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from vlarm.planning.instructions import (
    FAMILIES,
    INSTRUCTIONS,
    AnyOf,
    Count,
    Distinct,
    Not,
    On,
    StackHeight,
    Tower,
    Unmoved,
    select_instructions,
)
from vlarm.tasks.saycan_tabletop import PLACES


def _state(**xyz):
    return {k.replace("_", " "): np.array(v, dtype=float) for k, v in xyz.items()}


def test_sixty_plus_instructions_in_ten_families_with_a_held_out_part():
    assert len(INSTRUCTIONS) >= 60
    counts = Counter(i.family for i in INSTRUCTIONS)
    assert set(counts) == set(FAMILIES) and len(FAMILIES) == 10
    held = select_instructions(part="held-out")
    assert len(held) == 20 and all(i.held_out for i in held)
    assert {i.family for i in held} == set(FAMILIES)
    assert len({i.id for i in INSTRUCTIONS}) == len(INSTRUCTIONS)
    assert len({i.text for i in INSTRUCTIONS}) == len(INSTRUCTIONS)
    with pytest.raises(ValueError, match="valid:"):
        select_instructions(["cooking"])


def test_prompt_examples_are_not_evaluation_instructions():
    from vlarm.planning.saycan import EXAMPLES

    assert not {e[1] for e in EXAMPLES} & {i.text for i in INSTRUCTIONS}


def test_on_bowl_place_and_block():
    corner = PLACES["top left corner"]
    s = _state(red_block=(0.5, 0.1, 0.02), green_bowl=(0.52, 0.12, 0.0), blue_block=(0.5, 0.1, 0.06),
               yellow_block=(corner[0] + 0.01, corner[1], 0.02))
    assert On("red block", "green bowl")(s, s)
    assert On("blue block", "red block")(s, s) and not On("red block", "blue block")(s, s)
    assert On("yellow block", "top left corner")(s, s) and not On("yellow block", "middle")(s, s)
    far = _state(red_block=(0.3, -0.3, 0.02), green_bowl=(0.52, 0.12, 0.0))
    assert not On("red block", "green bowl")(far, far)
    assert not On("purple block", "green bowl")(s, s)        # absent objects are never on anything


def test_tower_and_stack_height():
    s = _state(a_block=(0.5, 0.0, 0.02), b_block=(0.505, 0.0, 0.06), c_block=(0.5, 0.005, 0.10),
               d_block=(0.3, 0.3, 0.02))
    assert Tower(("c block", "a block", "b block"))(s, s)
    assert not Tower(("a block", "b block", "c block", "d block"))(s, s)
    assert StackHeight(3)(s, s) and not StackHeight(2)(s, s)


def test_unmoved_count_distinct_not_anyof():
    start = _state(r_block=(0.5, 0.0, 0.02), g_block=(0.4, 0.2, 0.02))
    moved = _state(r_block=(0.6, 0.0, 0.02), g_block=(0.405, 0.2, 0.02))
    assert Unmoved()(start, start) and not Unmoved()(moved, start) and Unmoved(("g block",))(moved, start)
    corners = [p for p in PLACES if p.endswith("corner")]
    c0, c1 = PLACES[corners[0]], PLACES[corners[1]]
    s = _state(r_block=(*c0, 0.02), g_block=(*c1, 0.02))
    assert Distinct(("r block", "g block"), tuple(corners))(s, s)
    same = _state(r_block=(*c0, 0.02), g_block=(*c0, 0.06))
    assert not Distinct(("r block", "g block"), tuple(corners))(same, same)
    parts = (On("r block", corners[0]), On("g block", corners[0]))
    assert Count(1, parts)(s, s) and not Count(2, parts)(s, s) and Count(1, parts, exact=False)(same, same)
    assert Not(On("r block", corners[1]))(s, s) and AnyOf(parts)(s, s)


def test_each_instruction_judges_its_untouched_start_as_not_done_unless_impossible():
    """A plan that does nothing solves exactly the impossible instructions (checkers are not trivially true)."""
    from vlarm.tasks.saycan_tabletop import SceneSpec

    for ins in INSTRUCTIONS:
        assert isinstance(ins.spec, SceneSpec)
        rng = np.random.default_rng(0)
        names = ins.spec.names()
        ys = np.linspace(-0.3, 0.3, len(names))
        pos = {n: np.array([rng.uniform(0.30, 0.34), y, 0.02]) for n, y in zip(names, ys, strict=True)}
        for block, target in ins.spec.start.items():   # starts as the scene builds them
            xy = PLACES[target] if target in PLACES else pos[target][:2]
            pos[block] = np.array([xy[0], xy[1], 0.02])
        assert ins.success(pos, pos) == (ins.family == "impossible"), ins.id
