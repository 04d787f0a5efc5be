"""The long-horizon instruction set and its automatic judge (SayCan, Ahn et al. 2022, Sec. 5, families after its
Table 2 and the tabletop variant).

70 instructions in ten families (single primitive, matching colours, stacking, corners and sides, sorting,
relational, negation, counting, ambiguous, impossible), seven each. Each has a :class:`SceneSpec` (colours, and where
blocks start for the relational ones) and a goal checker over the simulator's final state, so plan success and
execution success are computed, never judged by eye. The last two of each family (20 instructions) are *held out*:
the prompt was never tuned on them, and they are reported apart.

Checkers read object centres (xyz metres, ``SayCanTabletop.object_positions``) at the end and at the start:

* ``On(a, b)``: block ``a`` rests on ``b``: a named place (xy within :data:`PLACE_TOL`), a bowl (xy within the bowl's
  radius) or a block (xy within 3 cm and 2.5-6 cm higher);
* ``Tower(blocks)``: the blocks form one stack (sorted by height, each on the one below);
* ``StackHeight(n)``: the tallest stack has exactly ``n`` blocks;
* ``Unmoved(names)``: each moved less than 2 cm;
* ``All``, ``AnyOf``, ``Not``, ``Count(n, goals, exact)``, ``Distinct(blocks, targets)`` (each block on a different
  target of the list).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vlarm.sim.assets import BOWL_RADIUS
from vlarm.tasks.saycan_tabletop import PLACES, SceneSpec

Positions = dict[str, np.ndarray]
#: A block is on a named place when its centre is this close to it in xy, metres.
PLACE_TOL = 0.06
#: Moving less than this counts as not moved, metres.
UNMOVED_TOL = 0.02
CORNERS = tuple(p for p in PLACES if p.endswith("corner"))
FAMILIES: tuple[str, ...] = ("single", "matching", "stacking", "corners", "sorting", "relational", "negation",
                             "counting", "ambiguous", "impossible")


class Check:
    """A goal predicate over the final and initial object positions."""

    def __call__(self, final: Positions, initial: Positions) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        """Readable form for reports."""
        raise NotImplementedError


def on(final: Positions, a: str, b: str) -> bool:
    """Whether object ``a`` rests on ``b`` (a place, bowl or block; see the module docstring); False if absent."""
    if a not in final:
        return False
    pa = final[a]
    if b in PLACES:
        return float(np.hypot(*(pa[:2] - np.asarray(PLACES[b])))) < PLACE_TOL
    if b not in final:
        return False
    pb = final[b]
    dist = float(np.hypot(*(pa[:2] - pb[:2])))
    if b.endswith(" bowl"):
        return dist < BOWL_RADIUS
    return dist < 0.03 and 0.025 < pa[2] - pb[2] < 0.06


@dataclass(frozen=True)
class On(Check):
    """``a`` rests on ``b``."""

    a: str
    b: str

    def __call__(self, final, initial):
        return on(final, self.a, self.b)

    def describe(self):
        return f"on({self.a}, {self.b})"


@dataclass(frozen=True)
class Tower(Check):
    """The blocks form one stack, in any order."""

    blocks: tuple[str, ...]

    def __call__(self, final, initial):
        if any(b not in final for b in self.blocks):
            return False
        order = sorted(self.blocks, key=lambda b: final[b][2])
        return all(on(final, upper, lower) for lower, upper in zip(order, order[1:], strict=False))

    def describe(self):
        return f"tower({', '.join(self.blocks)})"


@dataclass(frozen=True)
class StackHeight(Check):
    """The tallest stack of blocks has exactly ``n`` blocks."""

    n: int

    def __call__(self, final, initial):
        blocks = [b for b in final if b.endswith(" block")]
        below = {a: next((b for b in blocks if b != a and on(final, a, b)), None) for a in blocks}

        def height(a, seen=()):
            return 1 if below[a] is None or a in seen else 1 + height(below[a], (*seen, a))

        return max((height(a) for a in blocks), default=0) == self.n

    def describe(self):
        return f"tallest_stack == {self.n}"


@dataclass(frozen=True)
class Unmoved(Check):
    """Each named object moved less than :data:`UNMOVED_TOL` (all objects when ``names`` is empty)."""

    names: tuple[str, ...] = ()

    def __call__(self, final, initial):
        names = self.names or tuple(initial)
        return all(float(np.linalg.norm(final[n][:2] - initial[n][:2])) < UNMOVED_TOL for n in names if n in initial)

    def describe(self):
        return f"unmoved({', '.join(self.names) or 'everything'})"


@dataclass(frozen=True)
class All(Check):
    """Every part holds."""

    parts: tuple[Check, ...]

    def __call__(self, final, initial):
        return all(p(final, initial) for p in self.parts)

    def describe(self):
        return " and ".join(p.describe() for p in self.parts)


@dataclass(frozen=True)
class AnyOf(Check):
    """At least one part holds."""

    parts: tuple[Check, ...]

    def __call__(self, final, initial):
        return any(p(final, initial) for p in self.parts)

    def describe(self):
        return "any(" + ", ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class Not(Check):
    """The part does not hold."""

    part: Check

    def __call__(self, final, initial):
        return not self.part(final, initial)

    def describe(self):
        return f"not {self.part.describe()}"


@dataclass(frozen=True)
class Count(Check):
    """Exactly (or at least, ``exact=False``) ``n`` of the parts hold."""

    n: int
    parts: tuple[Check, ...]
    exact: bool = True

    def __call__(self, final, initial):
        k = sum(bool(p(final, initial)) for p in self.parts)
        return k == self.n if self.exact else k >= self.n

    def describe(self):
        return f"{'exactly' if self.exact else 'at least'} {self.n} of [" + ", ".join(
            p.describe() for p in self.parts) + "]"


@dataclass(frozen=True)
class Distinct(Check):
    """Each block rests on a different target of ``targets``."""

    blocks: tuple[str, ...]
    targets: tuple[str, ...]

    def __call__(self, final, initial):
        used = []
        for b in self.blocks:
            hits = [t for t in self.targets if on(final, b, t)]
            if not hits:
                return False
            used.append(hits[0])
        return len(set(used)) == len(used)

    def describe(self):
        return f"distinct({', '.join(self.blocks)} on {', '.join(self.targets)})"


@dataclass(frozen=True)
class Instruction:
    """One evaluation instruction.

    Attributes:
        id: stable identifier, e.g. ``"negation-3"``.
        family: one of :data:`FAMILIES`.
        text: the instruction.
        spec: the scene.
        check: the goal checker.
        held_out: True for the part never used to tune the prompt.
        expect_refusal: True when the right answer is to do nothing (impossible instructions).
    """

    id: str
    family: str
    text: str
    spec: SceneSpec
    check: Check
    held_out: bool = False
    expect_refusal: bool = False

    def success(self, final: Positions, initial: Positions) -> bool:
        """Whether the final state satisfies the instruction."""
        return bool(self.check(final, initial))


# ---------------------------------------------------------------------------------------------------- scenes
DEFAULT = SceneSpec(("blue", "red", "green", "yellow"), ("blue", "red", "green", "yellow"))
MIX = SceneSpec(("red", "orange", "purple", "blue"), ("green", "yellow", "red", "blue"))
WARM = SceneSpec(("yellow", "orange", "red", "green"), ("purple", "blue", "green", "orange"))


def _blocks(spec: SceneSpec) -> tuple[str, ...]:
    return tuple(f"{c} block" for c in spec.blocks)


def _bowls(spec: SceneSpec) -> tuple[str, ...]:
    return tuple(f"{c} bowl" for c in spec.bowls)


def _all_on(blocks: Sequence[str], target: str) -> All:
    return All(tuple(On(b, target) for b in blocks))


def _matching(spec: SceneSpec) -> All:
    return All(tuple(On(f"{c} block", f"{c} bowl") for c in spec.blocks if c in spec.bowls))


def _except(spec: SceneSpec, excluded: Sequence[str], target: str) -> All:
    keep = [b for b in _blocks(spec) if b not in excluded]
    return All((*(On(b, target) for b in keep), *(Not(On(b, target)) for b in excluded)))


def _with_start(spec: SceneSpec, **start: str) -> SceneSpec:
    return SceneSpec(spec.blocks, spec.bowls, {k.replace("_", " "): v for k, v in start.items()})


def _build() -> list[Instruction]:
    d, m, w = DEFAULT, MIX, WARM
    sort_spec = SceneSpec(("yellow", "blue", "red", "green"), ("red", "blue", "purple", "orange"))
    match4 = SceneSpec(("green", "yellow", "purple", "red"), ("yellow", "green", "red", "blue"))
    match_held = SceneSpec(("blue", "orange", "yellow", "purple"), ("purple", "blue", "red", "green"))
    rows: dict[str, list[tuple[str, SceneSpec, Check]]] = {
        "single": [
            ("put the red block in the green bowl", m, On("red block", "green bowl")),
            ("move the blue block to the top left corner", d, On("blue block", "top left corner")),
            ("place the orange block on the purple block", m, On("orange block", "purple block")),
            ("put the yellow block in the middle", d, On("yellow block", "middle")),
            ("move the green block onto the red block", d, On("green block", "red block")),
            ("put the purple block in the yellow bowl", m, On("purple block", "yellow bowl")),
            ("move the red block to the right side", w, On("red block", "right side")),
        ],
        "matching": [
            ("put all the blocks in the bowls with matching colors", d, _matching(d)),
            ("put each block in the bowl of the same color", m, _matching(m)),
            ("place the blocks in their matching bowls", w, _matching(w)),
            ("match the blocks to the bowls by color", match4, _matching(match4)),
            ("put the red block in the bowl of the same color", d, On("red block", "red bowl")),
            ("sort the blocks into the bowls that have the same color", d, _matching(d)),
            ("put the blocks in the bowls that match their colors", match_held, _matching(match_held)),
        ],
        "stacking": [
            ("stack all the blocks", d, Tower(_blocks(d))),
            ("put the red block on top of the blue block", d, On("red block", "blue block")),
            ("make a tower with the green block at the bottom and the yellow block on top of it", d,
             On("yellow block", "green block")),
            ("stack the blue, red and green blocks in that order, with blue at the bottom", d,
             All((On("red block", "blue block"), On("green block", "red block")))),
            ("build a tower of the orange and purple blocks", m, Tower(("orange block", "purple block"))),
            ("stack all the blocks into one tower", m, Tower(_blocks(m))),
            ("put the yellow block on the red block and then the blue block on the yellow block", d,
             All((On("yellow block", "red block"), On("blue block", "yellow block")))),
        ],
        "corners": [
            ("move all the blocks to the top right corner", d, _all_on(_blocks(d), "top right corner")),
            ("put the red block in the bottom left corner and the blue block in the top right corner", d,
             All((On("red block", "bottom left corner"), On("blue block", "top right corner")))),
            ("move the green block to the left side", d, On("green block", "left side")),
            ("put every block in a different corner", w, Distinct(_blocks(w), CORNERS)),
            ("move the yellow block to the bottom side", w, On("yellow block", "bottom side")),
            ("put all the blocks on the left side", m, _all_on(_blocks(m), "left side")),
            ("move the purple block to the bottom right corner and the orange block to the top left corner", m,
             All((On("purple block", "bottom right corner"), On("orange block", "top left corner")))),
        ],
        "sorting": [
            ("put all the blocks in the green bowl", m, _all_on(_blocks(m), "green bowl")),
            ("put the red and blue blocks in the yellow bowl and the other blocks in the green bowl", m,
             All((On("red block", "yellow bowl"), On("blue block", "yellow bowl"), On("orange block", "green bowl"),
                  On("purple block", "green bowl")))),
            ("sort the blocks: warm colors in the red bowl and cool colors in the blue bowl", sort_spec,
             All((On("yellow block", "red bowl"), On("red block", "red bowl"), On("blue block", "blue bowl"),
                  On("green block", "blue bowl")))),
            ("move the red and yellow blocks to the left side and the blue and green blocks to the right side", d,
             All((On("red block", "left side"), On("yellow block", "left side"), On("blue block", "right side"),
                  On("green block", "right side")))),
            ("put each block in a different bowl", w, Distinct(_blocks(w), _bowls(w))),
            ("put all the blocks in the blue bowl", d, _all_on(_blocks(d), "blue bowl")),
            ("put the green and yellow blocks in the red bowl and the rest in the blue bowl", d,
             All((On("green block", "red bowl"), On("yellow block", "red bowl"), On("blue block", "blue bowl"),
                  On("red block", "blue bowl")))),
        ],
        "relational": [
            ("move the block in the green bowl to the top left corner", _with_start(m, orange_block="green bowl"),
             On("orange block", "top left corner")),
            ("put the block in the top right corner in the blue bowl", _with_start(d, red_block="top right corner"),
             On("red block", "blue bowl")),
            ("put the block that is in the yellow bowl on the green block", _with_start(d, blue_block="yellow bowl"),
             On("blue block", "green block")),
            ("put the block in the middle in the red bowl", _with_start(m, purple_block="middle"),
             On("purple block", "red bowl")),
            ("move the block from the red bowl to the bottom side", _with_start(d, green_block="red bowl"),
             On("green block", "bottom side")),
            ("put the block in the yellow bowl in the blue bowl", _with_start(m, red_block="yellow bowl"),
             On("red block", "blue bowl")),
            ("move the block in the bottom left corner to the top side",
             _with_start(w, yellow_block="bottom left corner"), On("yellow block", "top side")),
        ],
        "negation": [
            ("put all the blocks except the red one in the green bowl", d, _except(d, ["red block"], "green bowl")),
            ("move every block but the blue one to the bottom side", m, _except(m, ["blue block"], "bottom side")),
            ("put all the blocks that are not yellow in the red bowl", d, _except(d, ["yellow block"], "red bowl")),
            ("stack all the blocks except the green one", d,
             All((Tower(("blue block", "red block", "yellow block")), Unmoved(("green block",))))),
            ("put all the blocks except the orange and the purple ones in the yellow bowl", m,
             _except(m, ["orange block", "purple block"], "yellow bowl")),
            ("move all the blocks except the yellow one to the right side", w,
             _except(w, ["yellow block"], "right side")),
            ("put all blocks other than the blue one in the blue bowl", d, _except(d, ["blue block"], "blue bowl")),
        ],
        "counting": [
            ("put two blocks in the red bowl", d, Count(2, tuple(On(b, "red bowl") for b in _blocks(d)))),
            ("move three blocks to the middle", m, Count(3, tuple(On(b, "middle") for b in _blocks(m)))),
            ("put one block in the blue bowl", w, Count(1, tuple(On(b, "blue bowl") for b in _blocks(w)))),
            ("stack three blocks", d, StackHeight(3)),
            ("put two blocks in the top left corner", w, Count(2, tuple(On(b, "top left corner") for b in _blocks(w)))),
            ("move two blocks to the right side", d, Count(2, tuple(On(b, "right side") for b in _blocks(d)))),
            ("put three blocks in the green bowl", m, Count(3, tuple(On(b, "green bowl") for b in _blocks(m)))),
        ],
        "ambiguous": [
            ("put a block in the yellow bowl", m, Count(1, tuple(On(b, "yellow bowl") for b in _blocks(m)), False)),
            ("put the red block in a bowl", d, AnyOf(tuple(On("red block", b) for b in _bowls(d)))),
            ("move any block to the middle", w, Count(1, tuple(On(b, "middle") for b in _blocks(w)), False)),
            ("put the blue block in a corner", d, AnyOf(tuple(On("blue block", c) for c in CORNERS))),
            ("stack two blocks", m, StackHeight(2)),
            ("put a block on the left side", m, Count(1, tuple(On(b, "left side") for b in _blocks(m)), False)),
            ("put the green block in one of the bowls", w, AnyOf(tuple(On("green block", b) for b in _bowls(w)))),
        ],
        "impossible": [
            ("put the pink block in the red bowl", d, Unmoved()),
            ("move the white block to the middle", m, Unmoved()),
            ("put the red block in the purple bowl", d, Unmoved()),
            ("stack the cyan block on the blue block", d, Unmoved()),
            ("put the brown block in the green bowl", m, Unmoved()),
            ("move the gray block to the top left corner", d, Unmoved()),
            ("put the blue block in the pink bowl", m, Unmoved()),
        ],
    }
    out = []
    for family in FAMILIES:
        entries = rows[family]
        for i, (text, spec, check) in enumerate(entries):
            out.append(Instruction(f"{family}-{i}", family, text, spec, check, held_out=i >= len(entries) - 2,
                                   expect_refusal=family == "impossible"))
    return out


#: The instruction set (70: seven per family; the last two of each family held out).
INSTRUCTIONS: tuple[Instruction, ...] = tuple(_build())


def select_instructions(families: Sequence[str] | None = None, part: str = "all") -> list[Instruction]:
    """Instructions of some families and part.

    Args:
        families: family names (None: all of :data:`FAMILIES`).
        part: ``"all"``, ``"tuning"`` (prompt may be tuned on it) or ``"held-out"``.

    Raises:
        ValueError: an unknown family or part (naming the valid ones).
    """
    families = list(families or FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown instruction families {unknown}; valid: {', '.join(FAMILIES)}")
    if part not in ("all", "tuning", "held-out"):
        raise ValueError(f"unknown part {part!r}; valid: all, tuning, held-out")
    return [i for i in INSTRUCTIONS if i.family in families and (part == "all" or i.held_out == (part == "held-out"))]


__all__ = ["FAMILIES", "INSTRUCTIONS", "All", "AnyOf", "Check", "Count", "Distinct", "Instruction", "Not", "On",
           "StackHeight", "Tower", "Unmoved", "on", "select_instructions"]
