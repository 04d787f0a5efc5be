"""stack-block-pyramid-seq (CLIPort, Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A; Ravens
``StackBlockPyramid``, Zeng et al. CoRL 2020).

Scene: a fixed 5 x 15 cm base of three brown tiles (lightest, middle, darkest; :mod:`vlarm.sim.stands`) and six
4 cm blocks of six distinct goal colours drawn from the variant's palette (no distractors). Goals, one per step
and each with its own instruction (CLIPort's template ``"put the {pick} block on {place}"``): blocks 0-2 on the
lightest, middle and darkest brown tiles, block 3 on blocks 0 and 1, block 4 on blocks 1 and 2, block 5 on blocks
3 and 4. Each goal is worth 1/6 and is judged on the current state ('pose' metric: 1 cm in xy, yaw within 15
degrees modulo 90; plus, unlike Ravens, a height check so that a block fallen from a dismantled row no longer
counts). Twelve steps are allowed (CLIPort's ``max_steps``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vlarm.sim import Scene
from vlarm.sim.assets import BLOCK_SIZE
from vlarm.sim.stands import PYRAMID_BASE_HEIGHT, PYRAMID_TILE, create_pyramid_base
from vlarm.sim.transforms import Pose, multiply
from vlarm.tasks.attributes import ALL_COLORS, COLORS, colors_for
from vlarm.tasks.base import Goal, Task, TaskError, check_color_overrides
from vlarm.tasks.language import BLOCK_WORDS, COLOR_WORDS, Grammar, Slot, parse_any, phrases
from vlarm.tasks.language import COLOR_HINT as _COLOR_HINT

FAMILY = "stack-block-pyramid-seq"
EXAMPLE = "stack the blocks into a pyramid"

N_BLOCKS = 6
BLOCK_RADIUS = BLOCK_SIZE * 0.75     # footprint radius used for collision-free sampling, metres
#: Footprint radius of the base (its half-diagonal, with room for the blocks' 4 cm width), metres.
BASE_RADIUS = 0.085
#: Block centres in the base frame, metres: bottom row on the three tiles, middle row, top (Ravens' offsets).
SLOTS: tuple[tuple[float, float, float], ...] = tuple(
    (0.0, y, PYRAMID_BASE_HEIGHT + BLOCK_SIZE * (row + 0.5))
    for row, ys in enumerate(((-PYRAMID_TILE, 0.0, PYRAMID_TILE), (-PYRAMID_TILE / 2, PYRAMID_TILE / 2), (0.0,)))
    for y in ys)
#: Slot -> the two slots it rests on (rows above the base).
SUPPORTS: dict[int, tuple[int, int]] = {3: (0, 1), 4: (1, 2), 5: (3, 4)}
#: The brown tiles in base order, as the step instructions name them.
SHADES: tuple[str, ...] = ("lightest", "middle", "darkest")
#: A block counts as placed only within this height of its slot (half a block), metres.
Z_EPS = BLOCK_SIZE / 2
MAX_STEPS = 12

_ACTIONS = ("put", "place", "move", "stack", "set")
_ON = ("on", "onto", "on top of", "atop", "over")
_SHADE_WORDS = {"lightest": "lightest", "light": "lightest", "lighter": "lightest", "middle": "middle",
                "medium": "middle", "center": "middle", "centre": "middle", "darkest": "darkest", "dark": "darkest",
                "darker": "darkest"}

#: One step on the base: "put the red block on the lightest brown block".
STEP_ON_BASE = Grammar(
    form="'put the <colour> block on the lightest brown block'",
    slots=(
        Slot("action", phrases(*_ACTIONS, meaning=""), f"known actions: {', '.join(_ACTIONS)}", structural=True),
        Slot("pick colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("object", BLOCK_WORDS, "this task knows: block"),
        Slot("preposition", phrases(*_ON, meaning=""), f"known prepositions: {', '.join(_ON)}", structural=True),
        Slot("base", _SHADE_WORDS, "known places: the lightest / middle / darkest brown block, or 'the <colour> "
             "and <colour> blocks'", determiners=True),
        Slot("base colour", phrases("brown", meaning=""), "the base's blocks are brown: the lightest / middle / "
             "darkest brown block", structural=True),
        Slot("target", {"block": "block", "tile": "block", "square": "block"}, "this task knows: block"),
    ),
    report_order=("object", "pick colour", "base"),
)
#: One step on two blocks: "put the red block on the green and blue blocks".
STEP_ON_PAIR = Grammar(
    form="'put the <colour> block on the <colour> and <colour> blocks'",
    slots=(
        Slot("action", phrases(*_ACTIONS, meaning=""), f"known actions: {', '.join(_ACTIONS)}", structural=True),
        Slot("pick colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("object", BLOCK_WORDS, "this task knows: block"),
        Slot("preposition", phrases(*_ON, meaning=""), f"known prepositions: {', '.join(_ON)}", structural=True),
        Slot("first support colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("and", phrases("and", meaning=""), "expected 'and' between the two colours", structural=True),
        Slot("second support colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("target", BLOCK_WORDS, "this task knows: blocks"),
    ),
    report_order=("object", "pick colour", "first support colour", "second support colour"),
    distinct=(("pick colour", "first support colour"), ("pick colour", "second support colour"),
              ("first support colour", "second support colour")),
)
_BUILD = ("stack", "build", "make", "arrange", "assemble", "form", "put", "place")
#: The whole task: "stack the blocks into a pyramid", "build a pyramid", "make a block pyramid".
WHOLE_TASK = Grammar(
    form="'stack the blocks into a pyramid'",
    slots=(
        Slot("action", phrases(*_BUILD, meaning=""), f"known actions: {', '.join(_BUILD)}", structural=True),
        Slot("object", phrases("blocks", "cubes", "colored blocks", "coloured blocks", meaning=""),
             "this task knows: blocks", determiners=True, optional=True),
        Slot("preposition", phrases("into", "in", "as", "to form", "to make", meaning=""),
             "known prepositions: into, in, as", optional=True, structural=True),
        Slot("goal", {"pyramid": "pyramid", "block pyramid": "pyramid", "pyramid of blocks": "pyramid"},
             "this task builds: pyramid", determiners=True),
        Slot("of blocks", phrases("blocks", "cubes", meaning=""), "this task knows: blocks", determiners=True,
             optional=True),
    ),
)
#: Every instruction form of the family, the per-step template first.
GRAMMARS: tuple[Grammar, ...] = (STEP_ON_BASE, STEP_ON_PAIR, WHOLE_TASK)


def step_instruction(colors: Sequence[str], slot: int) -> str:
    """CLIPort's instruction for putting the block of slot ``slot`` (0-5) in place, given the six block colours.

    Raises:
        ValueError: for a slot outside 0-5.
    """
    if not 0 <= slot < N_BLOCKS:
        raise ValueError(f"pyramid slots are 0-{N_BLOCKS - 1}, got {slot}")
    if slot < 3:
        place = f"the {SHADES[slot]} brown block"
    else:
        a, b = SUPPORTS[slot]
        place = f"the {colors[a]} and {colors[b]} blocks"
    return f"put the {colors[slot]} block on {place}"


@dataclass
class StackBlockPyramidSeq(Task):
    """CLIPort's stack-block-pyramid-seq; :attr:`variant` ``"seen"``, ``"unseen"`` or ``"full"`` picks the colours."""

    def __post_init__(self):
        self.lang_template = "put the {pick} block on {place}"
        self.pos_eps = 0.01
        self.max_steps = MAX_STEPS

    def parse_instruction(self, instruction: str) -> dict:
        """Ground an instruction of this family to block-colour overrides for :meth:`reset`.

        Accepted forms (an optional 'please', articles or none, any case, trailing punctuation):

        * a step on the base, ``"put the red block on the lightest brown block"`` (also place/move/stack/set;
          on/onto/on top of/atop/over; light/lighter, middle/medium/centre, dark/darker brown; block/tile/square)
          -> ``{"block0": "red"}`` (``block1`` for the middle tile, ``block2`` for the darkest);
        * a step on two blocks, ``"put the red block on the green and blue blocks"`` -> ``{"block3": "red",
          "block0": "green", "block1": "blue"}`` (the first such step of the pyramid);
        * the whole task, ``"stack the blocks into a pyramid"``, ``"build a pyramid"``, ``"make a block
          pyramid"`` -> ``{}``.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."`` from the form that
                came closest, naming each word that was not understood.
        """
        form, found = parse_any(GRAMMARS, instruction)
        if GRAMMARS[form] is STEP_ON_BASE:
            return {f"block{SHADES.index(found['base'])}": found["pick colour"]}
        if GRAMMARS[form] is STEP_ON_PAIR:
            a, b = SUPPORTS[3]
            return {"block3": found["pick colour"], f"block{a}": found["first support colour"],
                    f"block{b}": found["second support colour"]}
        return {}

    def is_match(self, pose: Pose, target: Pose, symmetry: float) -> bool:
        """Ravens' pose metric (xy within ``pos_eps``, yaw modulo ``symmetry``) and the block's centre within
        :data:`Z_EPS` of its slot's height (a block on the wrong row, or fallen, is not in place)."""
        return super().is_match(pose, target, symmetry) and abs(float(pose[0][2]) - float(target[0][2])) < Z_EPS

    def block_colors(self, rng: np.random.Generator, split: str, goal: dict) -> list[str]:
        """The six block colours, slot order: overrides ``goal["block<i>"]`` where given, the rest drawn without
        replacement from the variant's palette (CLIPort shuffles the palette and takes six).

        Raises:
            ValueError: for an override key other than ``block0``-``block5``, an unknown colour, or a colour
                given to two slots (the message names them).
        """
        keys = [f"block{i}" for i in range(N_BLOCKS)]
        given = check_color_overrides(goal, keys, "the pyramid's blocks")
        palette = [c for c in colors_for(split, self.variant) if c not in given]
        if len(palette) < N_BLOCKS - len(given):   # (never with CLIPort's palettes) fall back on every colour
            palette = [c for c in ALL_COLORS if c not in given]
        drawn = iter(str(c) for c in rng.permutation(palette))
        return [goal[k] if k in goal else next(drawn) for k in keys]

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        """Place the base and six blocks, append one goal per step; return the whole-task instruction.

        Raises:
            ValueError: for bad overrides (:meth:`block_colors`).
            TaskError: when the base or a block finds no free spot on the table (a workspace too small).
        """
        colors = self.block_colors(rng, split, goal)
        placed: list = []
        base_pose = self.sample_pose(rng, BASE_RADIUS, placed)
        if base_pose is None:
            raise TaskError(f"no free spot for the pyramid base ({2 * BASE_RADIUS:.2f} m across) in the workspace")
        base = create_pyramid_base(scene.client, base_pose)
        scene.add_object(base, "pyramid base", "brown", (PYRAMID_TILE, 3 * PYRAMID_TILE, PYRAMID_BASE_HEIGHT),
                         fixed=True)
        blocks = []
        for color in colors:
            pose = self.sample_pose(rng, BLOCK_RADIUS, placed)
            if pose is None:
                raise TaskError(f"no free spot for block {len(blocks) + 1} of {N_BLOCKS} in the workspace")
            blocks.append(scene.add_block(pose, COLORS[color], color))
        for slot, block in enumerate(blocks):
            target = multiply(base_pose, (SLOTS[slot], (0.0, 0.0, 0.0, 1.0)))
            self.goals.append(Goal(objects=[block], symmetries=[np.pi / 2], matches=np.ones((1, 1), dtype=bool),
                                   targets=[target], replace=False, rotations=True, metric="pose",
                                   max_reward=1.0 / N_BLOCKS, instruction=step_instruction(colors, slot)))
        self.goal_attributes = {f"block{i}": ("color", c) for i, c in enumerate(colors)}
        return "stack the blocks into a pyramid"


def _factory(variant: str):
    name = f"{FAMILY}-{variant}{'-colors' if variant != 'full' else ''}"
    return name, (lambda: StackBlockPyramidSeq(name=name, variant=variant))


#: Registered variants (``vlarm.tasks.make_task``): name -> factory.
VARIANTS = dict(_factory(v) for v in ("seen", "unseen", "full"))
