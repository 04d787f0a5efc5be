"""packing-shapes (CLIPort's packing-unseen-shapes; Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A).

Scene: a fixed brown box (inner footprint 10-15 cm a side, random yaw) and five distinct kit shapes
(:mod:`vlarm.sim.shapes`) in five distinct colours on the table. Goal: pack the first of them, named by shape
only, ``"pack the {obj} in the brown box"``; the other four are distractors. Metric: 'zone' (the share of the
shape's points inside the box's footprint). One step (``max_steps = 1``, CLIPort).

Splits (one variant, as in CLIPort): shapes from the training shapes (ids 0-13) on train and the unseen shapes
(14-19) on val/test; colours from the training colours on train and the evaluation colours on val/test, i.e.
``values_for(kind, split, "unseen")`` for both, so this task's :attr:`Task.variant` is ``"unseen"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlarm.sim import Scene
from vlarm.sim.assets import create_container
from vlarm.sim.shapes import SHAPE_HEIGHT, SHAPE_SIZE, create_shape
from vlarm.tasks.assembling_kits import SHAPE_HINT, SHAPE_WORDS, mark_unknown_letters, spoken
from vlarm.tasks.attributes import COLORS, KIT_SHAPES, colors_for, values_for
from vlarm.tasks.base import Goal, Task, TaskError
from vlarm.tasks.language import COLOR_HINT, COLOR_WORDS, Grammar, Slot, phrases

FAMILY = "packing-shapes"
EXAMPLE = "pack the letter E shape in the brown box"

N_OBJECTS = 5
#: Range of the box's inner footprint, metres (CLIPort ``get_random_size(0.1, 0.15, 0.1, 0.15, 0.05, 0.05)``).
BOX_SIZE_RANGE = (0.10, 0.15)
BOX_HEIGHT = 0.05
BOX_WALL = 0.005

VERBS: tuple[str, ...] = ("pack", "put", "place", "move", "drop")
PREPOSITIONS: tuple[str, ...] = ("in", "into", "inside")
#: [please] VERB [the] [COLOUR] SHAPE PREPOSITION [the] [brown] BOX, any case and punctuation.
GRAMMAR = Grammar(
    form="'pack the <shape> in the brown box'",
    slots=(
        Slot("action", phrases(*VERBS, meaning=""), f"known actions: {', '.join(VERBS)}", structural=True),
        Slot("colour", COLOR_WORDS, COLOR_HINT, determiners=True, optional=True),
        Slot("shape", SHAPE_WORDS, SHAPE_HINT, determiners=True),
        Slot("preposition", phrases(*PREPOSITIONS, meaning=""), f"known prepositions: {', '.join(PREPOSITIONS)}",
             structural=True),
        Slot("target", {"brown box": "box", "box": "box", "brown container": "box", "container": "box"},
             "this task knows: the brown box", determiners=True),
    ),
    report_order=("shape", "colour", "target"),
)


@dataclass
class PackingShapes(Task):
    """CLIPort's packing-shapes (unseen shapes on val/test; see the module docstring)."""

    def __post_init__(self):
        self.lang_template = "pack the {obj} in the brown box"
        self.max_steps = 1

    def parse_instruction(self, instruction: str) -> dict:
        """Ground ``"pack the <shape> in the brown box"`` to ``{"shape": s}`` (plus ``"color"`` when one is named).

        Accepted variants: an optional 'please'; the verbs pack/put/place/move/drop; articles or none; an
        optional colour before the shape; shape names with or without 'shape' (``"letter e"``, ``"heart shape"``)
        and the synonyms rhombus, disc/disk and cross; in/into/inside; 'box', 'brown box' or 'container'; any
        case, extra whitespace and trailing punctuation.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."``, naming each word
                that was not understood.
        """
        found = GRAMMAR.parse(mark_unknown_letters(instruction))
        goal = {"shape": found["shape"]}
        if "colour" in found:
            goal["color"] = found["colour"]
        return goal

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        shapes = [str(s) for s in rng.choice(values_for("shape", split, "unseen"), N_OBJECTS, replace=False)]
        colors = [str(c) for c in rng.permutation(colors_for(split, "unseen"))[:N_OBJECTS]]
        if "shape" in goal:
            shapes = [goal["shape"]] + [s for s in shapes if s != goal["shape"]][:N_OBJECTS - 1]
        if "color" in goal:
            colors = [goal["color"]] + [c for c in colors if c != goal["color"]][:N_OBJECTS - 1]
        size = (float(rng.uniform(*BOX_SIZE_RANGE)), float(rng.uniform(*BOX_SIZE_RANGE)), BOX_HEIGHT)
        placed: list = []
        box_pose = self.sample_pose(rng, float(np.hypot(size[0], size[1])) / 2 + BOX_WALL, placed)
        if box_pose is None:
            raise TaskError(f"no room on the table for the {size[0]:.2f} x {size[1]:.2f} m box")
        box = create_container(scene.client, box_pose[0], box_pose[1], size[:2], COLORS["brown"], wall=BOX_WALL)
        scene.add_object(box, "box", "brown", size, fixed=True)
        bodies = []
        for i, (name, color) in enumerate(zip(shapes, colors, strict=True)):
            pose = self.sample_pose(rng, SHAPE_SIZE / 2, placed)
            if pose is None:
                if i == 0:
                    raise TaskError(f"no room on the table for the {color} {name} next to the box")
                break    # a crowded table: fewer distractor shapes
            made = create_shape(scene.client, KIT_SHAPES.index(name), pose, COLORS[color])
            scene.add_object(made.body, name, color, (SHAPE_SIZE, SHAPE_SIZE, SHAPE_HEIGHT))
            self.object_points[made.body] = made.points
            bodies.append(made.body)
        place = (box_pose[0] + np.array([0.0, 0.0, 0.002]), box_pose[1])
        self.goals.append(Goal(objects=bodies[:1], symmetries=[0.0], matches=np.ones((1, 1), bool), targets=[place],
                               replace=False, rotations=True, metric="zone", max_reward=1.0,
                               zones=[(box_pose, size)]))
        self.max_steps = 1
        self.goal_attributes = {"shape": ("shape", shapes[0]), "color": ("color", colors[0])}
        return self.lang_template.format(obj=spoken(shapes[0]))


#: Registered variants (``vlarm.tasks.make_task``): name -> factory.
VARIANTS = {FAMILY: lambda: PackingShapes(name=FAMILY, variant="unseen")}

__all__ = ["EXAMPLE", "FAMILY", "GRAMMAR", "PackingShapes", "VARIANTS"]
