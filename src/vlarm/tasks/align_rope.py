"""align-rope (CLIPort, Shridhar et al. CoRL 2021, Appendix A; Ravens ``align_rope``, Zeng et al. CoRL 2020).

Scene: a three-sided square outline (a flat visual marker, side :data:`SQUARE_SIDE`, random pose; its front side is
open) and a rope of :data:`N_BEADS` beads (:mod:`vlarm.sim.rope`) dropped as a tangle somewhere on the table.
Instruction: ``align the rope from <end> to <end>`` naming one side of the square by its two ends, in CLIPort's four
phrases. In the square's own frame the front is the open side, the two front ends are "tips" and the two back
ends "corners"; right is +x, front is +y. Goal ('pose' metric, CLIPort's 2 cm, no yaw): bead ``i`` on the ``i``-th
of :data:`N_BEADS` evenly spaced points along that side, or on the mirrored one (either end of the rope may go
either way); partial credit per bead. The targets span exactly the straight rope's length, so the rope must lie
straight along the side. Action: suction pick-and-place with a low straight carry (:data:`CARRY_HEIGHT`, as Ravens'
``PickPlace(height=0.02)``), so the picked bead drags the rest of the rope along the table. 20 steps (CLIPort's
``max_steps``).

Oracle: Ravens' (:meth:`Task.oracle`: the bead farthest from its nearest free target is picked and placed on it),
with one change: while an end bead is off target, only the two end beads are candidates. Dragging the ends to the
two ends of the side pulls the rope straight between them; Ravens' farthest-first order often drags a middle bead
sideways and pulls its aligned neighbours off (test seeds 10001-10119, full-resolution cameras, low carry: Ravens'
order solved 58/60 within the 20 steps, mean 8.0 steps; ends first 60/60, mean 4.8 steps).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from vlarm.sim import PrimitiveResult, Scene, pick_place
from vlarm.sim.assets import create_compound
from vlarm.sim.rope import BEAD_HALF, create_rope
from vlarm.sim.scene import Observation
from vlarm.sim.transforms import multiply
from vlarm.tasks.attributes import COLORS
from vlarm.tasks.base import Action, Goal, Task, TaskError
from vlarm.tasks.language import Grammar, Slot, phrases

N_BEADS = 20                                              # Ravens
BEAD_SPACING = 2 * BEAD_HALF * np.sqrt(2)                 # joint length between bead centres, metres (Ravens)
SQUARE_SIDE = N_BEADS * BEAD_SPACING                      # side of the square, metres (Ravens: 0.283 m)
OUTLINE_WIDTH = 0.01                                      # width of the outline's strips, metres (Ravens)
OUTLINE_THICKNESS = 0.001                                 # metres
ROPE_MARGIN = 0.1                                         # the rope is dropped this far inside the workspace, metres
DROP_HEIGHT = 0.05                                        # height below the first bead of the dropped column, metres
DROP_STEPS = 480                                          # physics steps the rope falls for before settling (Ravens)
CARRY_HEIGHT = 0.02                                       # a picked bead slides this high above the table (Ravens)

#: Corners of the square in its own frame (metres): right is +x, front (the open side) is +y.
CORNERS: dict[str, tuple[float, float]] = {
    "front right": (SQUARE_SIDE / 2, SQUARE_SIDE / 2), "front left": (-SQUARE_SIDE / 2, SQUARE_SIDE / 2),
    "back right": (SQUARE_SIDE / 2, -SQUARE_SIDE / 2), "back left": (-SQUARE_SIDE / 2, -SQUARE_SIDE / 2)}
#: CLIPort's four directions: (phrase, start corner, end corner).
DIRECTIONS: tuple[tuple[str, str, str], ...] = (
    ("front left tip to front right tip", "front left", "front right"),
    ("front right tip to back right corner", "front right", "back right"),
    ("front left tip to back left corner", "front left", "back left"),
    ("back right corner to back left corner", "back right", "back left"),
)

FAMILY = "align-rope"
EXAMPLE = "align the rope from front left tip to front right tip"

VERBS: tuple[str, ...] = ("align", "straighten", "stretch", "lay", "put", "place", "move")
_ENDS: dict[str, str] = {f"{fb} {lr}{f' {noun}' if noun else ''}": f"{fb} {lr}"
                         for fb in ("front", "back") for lr in ("left", "right")
                         for noun in ("tip", "corner", "end", "")}
_END_HINT = "known ends: front left tip, front right tip, back left corner, back right corner"
#: [please] VERB the rope from END to END [please]; an END is front/back left/right [tip|corner|end].
GRAMMAR = Grammar(
    form="'align the rope from <front|back> <left|right> <tip|corner> to <front|back> <left|right> <tip|corner>'",
    slots=(
        Slot("action", phrases(*VERBS, meaning=""), f"known actions: {', '.join(VERBS)}", structural=True),
        Slot("object", {"rope": "rope", "cable": "rope"}, "this task knows: rope, cable", determiners=True),
        Slot("from", phrases("from", "between", "along", meaning=""), "expected 'from'", structural=True),
        Slot("start", _ENDS, _END_HINT, determiners=True),
        Slot("to", phrases("to", "and", meaning=""), "expected 'to'", structural=True),
        Slot("end", _ENDS, _END_HINT, determiners=True),
    ),
    report_order=("object", "start", "end"),
    distinct=(("start", "end"),),
)


def _direction_of(start: str, end: str) -> str | None:
    """CLIPort's direction phrase for the side between two corners (either order), or None for a diagonal."""
    for phrase, a, b in DIRECTIONS:
        if {a, b} == {start, end}:
            return phrase
    return None


@dataclass
class AlignRope(Task):
    """CLIPort's align-rope (one variant: no attribute splits)."""

    def __post_init__(self):
        self.lang_template = "align the rope from {direction}"
        self.pos_eps = 0.02
        self.max_steps = 20

    def parse_instruction(self, instruction: str) -> dict:
        """Ground ``"align the rope from <end> to <end>"`` to ``{"direction": <CLIPort phrase>}``.

        The two ends must be the ends of one side of the square (either order): front left/front right (the
        open side), front right/back right, front left/back left, back right/back left; an end may be called
        tip, corner or end, or nothing. Also accepted: an optional 'please'; the verbs align/straighten/stretch/
        lay/put/place/move; 'rope' or 'cable'; 'from', 'between' or 'along' and 'to' or 'and'; any case, extra
        whitespace and trailing punctuation.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."`` naming each word
                that was not understood, or the two ends when they are opposite corners.
        """
        found = GRAMMAR.parse(instruction)
        direction = _direction_of(found["start"], found["end"])
        if direction is None:
            sides = "; ".join(phrase for phrase, _, _ in DIRECTIONS)
            raise ValueError(f"cannot ground the instruction. Understood: object 'rope', start '{found['start']}', "
                             f"end '{found['end']}'. Not understood: '{found['start']}' to '{found['end']}' is a "
                             f"diagonal, not a side of the square (sides: {sides}).")
        return {"direction": direction}

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        placed: list = []
        square = self.sample_pose(rng, SQUARE_SIDE / np.sqrt(2), placed)
        if square is None:
            raise TaskError(f"no room for a {SQUARE_SIDE:.3f} m square in the workspace {scene.bounds[:2].tolist()}")
        self._add_outline(scene, square)
        known = {phrase: (a, b) for phrase, a, b in DIRECTIONS}
        direction = goal.get("direction") or DIRECTIONS[int(rng.integers(len(DIRECTIONS)))][0]
        if direction not in known:
            raise ValueError(f"unknown direction {direction!r}; directions: {', '.join(known)}")
        identity = np.array([0.0, 0.0, 0.0, 1.0])
        corner_a, corner_b = (multiply(square, ((*CORNERS[c], 0.0), identity))[0] for c in known[direction])
        corner_a[2] = corner_b[2] = 0.0
        increment = (corner_b - corner_a) / N_BEADS
        targets = [(corner_a + (i + 0.5) * increment, identity) for i in range(N_BEADS)]
        drop = self.sample_pose(rng, ROPE_MARGIN, [])[0] + [0.0, 0.0, DROP_HEIGHT]
        rope = create_rope(scene.client, drop, N_BEADS, BEAD_SPACING, COLORS["white"], COLORS["red"])
        size = (2 * BEAD_HALF,) * 3
        for i, bead in enumerate(rope.beads):
            scene.add_object(bead, "bead", "white" if i in (0, N_BEADS - 1) else "red", size)
        scene.step(DROP_STEPS)
        matches = (np.eye(N_BEADS) + np.eye(N_BEADS)[::-1]) > 0
        self.goals.append(Goal(objects=list(rope.beads), symmetries=[0.0] * N_BEADS, matches=matches,
                               targets=targets, replace=False, rotations=False, metric="pose", max_reward=1.0))
        return self.lang_template.format(direction=direction)

    def oracle(self, obs: Observation, rng: np.random.Generator) -> Action:
        """Ravens' oracle restricted to the end beads while either end is off target (module docstring).

        Raises:
            TaskError: if no goal is left or no bead to pick is visible.
        """
        goal = self.goals[0] if self.goals else None
        if goal is not None:
            ends = [0, len(goal.objects) - 1]
            if not all(self.object_done(goal, i) for i in ends):
                view = copy.copy(self)   # the same scene, judged on the end beads only
                view.goals = [Goal(objects=[goal.objects[i] for i in ends], symmetries=[0.0, 0.0],
                                   matches=goal.matches[ends].copy(), targets=goal.targets, replace=False,
                                   rotations=False)]
                return Task.oracle(view, obs, rng)
        return super().oracle(obs, rng)

    def execute(self, scene: Scene, pick_pose, place_pose) -> PrimitiveResult:
        """Pick-and-place with a low straight carry (:data:`CARRY_HEIGHT`), dragging the rope along the table; of
        the beads the tool touches it grasps the one nearest its axis."""
        return pick_place(scene, pick_pose, place_pose, carry_height=CARRY_HEIGHT, grasp_nearest=True)

    @staticmethod
    def _add_outline(scene: Scene, pose) -> int:
        """The three-sided outline (back, left and right strips; the front is open), visual only, fixed."""
        half, inset = SQUARE_SIDE / 2, SQUARE_SIDE / 2 - OUTLINE_WIDTH / 2
        z, color = OUTLINE_THICKNESS / 2, COLORS["green"]
        parts = [((0.0, -inset, z), (SQUARE_SIDE, OUTLINE_WIDTH, OUTLINE_THICKNESS), 0.0, color),
                 ((inset, 0.0, z), (OUTLINE_WIDTH, SQUARE_SIDE, OUTLINE_THICKNESS), 0.0, color),
                 ((-inset, 0.0, z), (OUTLINE_WIDTH, SQUARE_SIDE, OUTLINE_THICKNESS), 0.0, color)]
        body = create_compound(scene.client, pose[0], pose[1], parts, mass=0.0, collision=False)
        return scene.add_object(body, "square", "green", (2 * half, 2 * half, OUTLINE_THICKNESS), fixed=True)


#: Registered variants (``vlarm.tasks.make_task``): name -> factory.
VARIANTS = {"align-rope": lambda: AlignRope(name="align-rope", variant="seen")}
