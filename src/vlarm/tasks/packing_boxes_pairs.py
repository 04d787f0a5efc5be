"""packing-boxes-pairs: pack every block of two colours into the brown box (CLIPort, Shridhar et al. CoRL 2021,
Sec. 4.1 and Appendix A; blocks sized by Ravens' k-d split, ``PackingBoxes``, Zeng et al. CoRL 2020).

Scene: a fixed brown box with a random inner footprint of 5-30 cm a side and random yaw. Its floor is split into
cells of at least 5 cm with 1 cm gaps (:func:`vlarm.tasks.packing.split_cells`); one block per cell, 5 cm tall and
sized to the cell, coloured with one of two goal colours, starts at a free table pose. Four distractor blocks of
cell sizes take colours of the variant's palette other than the goal colours. Goal (CLIPort's template ``"pack all
the {colors} blocks into the brown box"``, ``{colors}`` = ``"red and blue"``, or one colour when the box holds one
cell): every goal block inside the box ('zone' metric, the oracle puts each block back in its own cell), worth 1.
Twenty steps are allowed (CLIPort's ``max_steps``). Unlike CLIPort, which colours each block at random and so may
use one colour only, both named colours are used whenever there are two blocks or more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vlarm.sim import Scene
from vlarm.sim.assets import box_points, create_box
from vlarm.sim.transforms import quat_to_yaw, yaw_to_quat
from vlarm.tasks.attributes import ALL_COLORS, COLORS, colors_for
from vlarm.tasks.base import Goal, Task, TaskError
from vlarm.tasks.language import BLOCK_WORDS, COLOR_WORDS, Grammar, Slot
from vlarm.tasks.language import COLOR_HINT as _COLOR_HINT
from vlarm.tasks.packing import action_slot, add_box, pack_slots, split_cells

FAMILY = "packing-boxes-pairs"
EXAMPLE = "pack all the red and blue blocks into the brown box"

#: CLIPort's random box size range (inner side, metres).
BOX_SIZE_RANGE = (0.05, 0.3)
#: Smallest block side after a k-d cut and the gap between cells, metres (CLIPort: 5 cm and 1 cm).
MIN_BLOCK = 0.05
CELL_MARGIN = 0.01
BLOCK_HEIGHT = 0.05
N_DISTRACTORS = 4
MAX_STEPS = 20
#: Grid step of a block's zone points, metres.
POINT_SPACING = 0.01
#: Tries at a box with enough cells for the requested colours before giving up.
BOX_TRIES = 50

_SECOND = {f"and {word}": color for word, color in COLOR_WORDS.items()}
_SECOND.update({f"and the {word}": color for word, color in COLOR_WORDS.items()})
_BLOCKS = {**BLOCK_WORDS, "box": "block", "boxes": "block"}

#: ``[please] VERB [all] [the] COLOUR [and COLOUR] blocks in|into|inside [the] [brown] box [please]``.
GRAMMAR = Grammar(
    form="'pack all the <colour> and <colour> blocks into the brown box'",
    slots=(
        action_slot(),
        Slot("first colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("second colour", _SECOND, "'and <colour>'", optional=True),
        Slot("object", _BLOCKS, "this task knows: blocks"),
        *pack_slots(),
    ),
    report_order=("object", "first colour", "second colour", "target"),
    distinct=(("first colour", "second colour"),),
)


@dataclass
class PackingBoxesPairs(Task):
    """CLIPort's packing-boxes-pairs; :attr:`variant` ``"seen"``, ``"unseen"`` or ``"full"`` picks the colours."""

    def __post_init__(self):
        self.lang_template = "pack all the {colors} blocks into the brown box"
        self.max_steps = MAX_STEPS

    def parse_instruction(self, instruction: str) -> dict:
        """Ground ``"pack all the red and blue blocks into the brown box"`` to ``{"color 1": "red", "color 2":
        "blue"}`` (one colour: ``{"color 1": ...}``).

        Accepted variants: an optional 'please'; the verbs pack/put/place/move; 'all', 'the' or nothing before the
        colours; one colour or two joined by 'and'; block(s), box(es) or cube(s); in/into/inside; 'the', 'brown'
        optional before 'box' (or 'container'); any case, extra whitespace and trailing punctuation.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."`` (also when the two
                colours are the same).
        """
        found = GRAMMAR.parse(instruction)
        goal = {"color 1": found["first colour"]}
        if "second colour" in found:
            goal["color 2"] = found["second colour"]
        return goal

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        palette = [str(c) for c in colors_for(split, self.variant)]
        wanted = [goal[k] for k in ("color 1", "color 2") if k in goal]
        for color in wanted:
            if color not in COLORS:
                raise ValueError(f"unknown colour {color!r}; known colours: {', '.join(ALL_COLORS)}")
        for _ in range(BOX_TRIES):
            size = rng.uniform(BOX_SIZE_RANGE[0], BOX_SIZE_RANGE[1], 2)
            cells = split_cells(rng, size, MIN_BLOCK, CELL_MARGIN)
            if len(cells) >= max(1, len(wanted)):
                break
        placed: list = []
        box = add_box(self, scene, rng, size, placed)
        if box is None:
            raise TaskError(f"no free table pose for a {size[0]:.2f} x {size[1]:.2f} m box")
        colors = wanted or [str(c) for c in rng.choice(palette, min(2, len(cells)), replace=False)]
        # every named colour at least once, the rest at random (CLIPort: each block one of the two at random)
        block_colors = list(colors[:len(cells)]) + [str(c) for c in rng.choice(colors, len(cells) - len(colors))]
        block_colors = [block_colors[i] for i in rng.permutation(len(block_colors))]
        blocks, targets = [], []
        for cell, color in zip(cells, block_colors, strict=True):
            body = self._add_block(scene, rng, cell, color, placed)
            if body is not None:
                blocks.append(body)
                targets.append(box.target((cell[:2] + cell[2:]) / 2))
        if not blocks:
            raise TaskError("the table had no room for any block to pack")
        others = [c for c in palette if c not in colors]
        for i in rng.choice(len(cells), N_DISTRACTORS):
            self._add_block(scene, rng, cells[i], str(rng.choice(others)), placed, goal_block=False)
        self.goals.append(Goal(objects=blocks, symmetries=[0.0] * len(blocks),
                               matches=np.eye(len(blocks), dtype=bool), targets=targets, replace=False,
                               rotations=True, metric="zone", max_reward=1.0, zones=[box.zone]))
        used = [c for c in colors if c in {scene.objects[b].color for b in blocks}]
        self.goal_attributes = {f"color {i + 1}": ("color", c) for i, c in enumerate(used)}
        return self.lang_template.format(colors=" and ".join(used))

    def _add_block(self, scene: Scene, rng: np.random.Generator, cell: np.ndarray, color: str, placed: list,
                   goal_block: bool = True) -> int | None:
        """A block sized to ``cell`` at a free table pose (None when the table is full); goal blocks get points."""
        size = (float(cell[2] - cell[0]), float(cell[3] - cell[1]), BLOCK_HEIGHT)
        pose = self.sample_pose(rng, 0.5 * math.hypot(size[0], size[1]), placed)
        if pose is None:
            return None
        position = np.asarray(pose[0]) + [0.0, 0.0, BLOCK_HEIGHT / 2]
        body = create_box(scene.client, position, yaw_to_quat(quat_to_yaw(pose[1])), size, COLORS[color])
        scene.add_object(body, "block", color, size)
        if goal_block:
            self.object_points[body] = box_points(size, POINT_SPACING)
        return body


#: Registered variants (``vlarm.tasks.make_task``): name -> factory.
VARIANTS = {f"packing-boxes-pairs-{v}{'-colors' if v != 'full' else ''}": (lambda v=v: PackingBoxesPairs(
    name=f"packing-boxes-pairs-{v}{'-colors' if v != 'full' else ''}", variant=v)) for v in ("seen", "unseen", "full")}
