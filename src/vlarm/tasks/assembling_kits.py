"""assembling-kits-seq (CLIPort, Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A; Ravens ``assembling_kits``).

Scene: a fixed kit board (28 x 20 cm) with five shape holes at Ravens' hole positions, each hole at its own
random yaw, and five coloured shapes on the table, the i-th of which fits the i-th hole. Shapes are drawn with
replacement (so a kit may hold the same shape twice) and colours without. No distractors (CLIPort has none).

Goals: one per shape, in random order, each worth 1/5, each with its own instruction (the policy is told one step
at a time, :meth:`Task.instruction_now`): ``"put the {color} {obj} in the {loc}{obj} hole"``, where ``loc`` is
empty unless the kit holds the same shape more than once, and then names the hole's place among them (``"top "``,
``"bottom "``, ``"left "``, ``"right "`` or ``"middle "``, in CLIPort's top-down view, x down and y to the right:
top = smaller x, left = smaller y). Metric: 'pose', 1 cm and 15 degrees, modulo the shape's yaw symmetry
(:data:`vlarm.sim.shapes.SYMMETRY`). A shape counts only in its own hole. ``max_steps`` = 5, one step per shape
(CLIPort). The goal attributes are every step's colour and shape (roles ``"color 1"``, ``"shape 1"``, ... in goal
order), so the novelty of an episode covers the whole kit.

Splits, as in CLIPort's code: shapes follow the split, not the colour variant. ``-seen-colors`` and
``-unseen-colors`` both draw from the training shapes (ids 0-13) on train and the unseen shapes (14-19) on val and
test; ``-full`` draws from all 20 everywhere. Colours: ``-seen-colors`` the training colours everywhere,
``-unseen-colors`` the evaluation colours on val/test, ``-full`` all eleven (``colors_for``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from vlarm.sim import Scene
from vlarm.sim.assets import create_box
from vlarm.sim.shapes import SHAPE_HEIGHT, SHAPE_SIZE, create_hole, create_shape
from vlarm.sim.transforms import Pose, multiply, yaw_to_quat
from vlarm.tasks.attributes import ALL_COLORS, COLORS, KIT_SHAPES, colors_for, values_for
from vlarm.tasks.base import Goal, Task, TaskError
from vlarm.tasks.language import COLOR_HINT as _COLOR_HINT
from vlarm.tasks.language import COLOR_WORDS, PUNCTUATION, Grammar, Slot, phrases, words_of

FAMILY = "assembling-kits-seq"
EXAMPLE = "put the red letter R shape in the letter R shape hole"

N_OBJECTS = 5
#: Kit board size (x, y, z) in metres (Ravens ``kitting/kit.urdf``).
KIT_SIZE = (0.28, 0.2, 0.005)
KIT_COLOR = (0.82, 0.84, 0.88)
#: Hole centres in the kit frame, metres (Ravens ``assembling_kits.py``).
HOLE_OFFSETS: tuple[tuple[float, float], ...] = ((-0.09, 0.045), (0.0, 0.045), (0.09, 0.045), (-0.045, -0.045),
                                                 (0.045, -0.045))
LOCATIONS: tuple[str, ...] = ("top", "bottom", "left", "right", "middle")


def spoken(shape: str) -> str:
    """How CLIPort says a kit shape in an instruction: ``"letter R"`` -> ``"letter R shape"``, others unchanged."""
    return f"{shape} shape" if shape.startswith("letter") else shape


def _shape_words() -> dict[str, str]:
    """Phrase -> kit shape name: each name with and without 'shape', in lower case, and a few synonyms."""
    words = {}
    for name in KIT_SHAPES:
        words[name.lower()] = name
        words[f"{name.lower()} shape"] = name
    for synonym, name in (("rhombus", "diamond"), ("disc", "circle"), ("disk", "circle"), ("cross", "plus")):
        words[synonym] = words[f"{synonym} shape"] = name
    return words


#: Phrase -> kit shape name (shared with packing-shapes).
SHAPE_WORDS: dict[str, str] = _shape_words()
SHAPE_HINT = f"known shapes: {', '.join(KIT_SHAPES)}"
VERBS: tuple[str, ...] = ("put", "place", "move", "drop", "insert", "fit")
PREPOSITIONS: tuple[str, ...] = ("in", "into", "inside")
KIT_VERBS: tuple[str, ...] = ("assemble", "complete", "finish", "fill")

#: One step: [please] VERB [the] COLOUR SHAPE PREPOSITION [the] [LOCATION] SHAPE HOLE, any case and punctuation.
GRAMMAR = Grammar(
    form="'put the <colour> <shape> in the [top|bottom|left|right|middle] <shape> hole'",
    slots=(
        Slot("action", phrases(*VERBS, meaning=""), f"known actions: {', '.join(VERBS)}", structural=True),
        Slot("colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("shape", SHAPE_WORDS, SHAPE_HINT),
        Slot("preposition", phrases(*PREPOSITIONS, meaning=""), f"known prepositions: {', '.join(PREPOSITIONS)}",
             structural=True),
        Slot("location", phrases(*LOCATIONS), f"known locations: {', '.join(LOCATIONS)}", determiners=True,
             optional=True),
        Slot("hole shape", SHAPE_WORDS, SHAPE_HINT, determiners=True),
        Slot("target", {"hole": "hole", "holes": "hole", "slot": "hole"}, "this task knows: hole"),
    ),
    report_order=("shape", "colour", "location", "target"),
)
#: The whole task at once: "assemble the kit" (grounds to no overrides: a random kit).
KIT_GRAMMAR = Grammar(
    form="'assemble the kit'",
    slots=(Slot("action", phrases(*KIT_VERBS, meaning=""), f"known actions: {', '.join(KIT_VERBS)}",
                structural=True),
           Slot("kit", {"kit": "kit", "kits": "kit"}, "this task knows: kit", determiners=True)),
)


def mark_unknown_letters(instruction: str) -> str:
    """Join ``"letter <x>"`` into one word when no kit shape is that letter (``"letter Q"`` -> ``"letter-Q"``), so
    the grammar reports the unknown shape instead of a missing one."""
    words = instruction.split()
    for i in range(len(words) - 1):
        if words[i].lower() == "letter" and f"letter {words[i + 1].lower().strip(PUNCTUATION)}" not in SHAPE_WORDS:
            words[i], words[i + 1] = "", f"letter-{words[i + 1]}"
    return " ".join(w for w in words if w)


def hole_location(i: int, shapes: list[int], positions: np.ndarray) -> str:
    """CLIPort's spatial word for hole ``i`` among the kit's holes of the same shape (``""`` when it is unique).

    Args:
        i: hole index.
        shapes: shape id of every hole.
        positions: ``(n_holes, 2)`` world xy of the holes, metres.

    Returns:
        ``""`` or one of ``"top "``, ``"bottom "`` (smallest / largest x, when x separates more than y),
        ``"left "``, ``"right "`` (smallest / largest y), ``"middle "`` (none of these), with a trailing space.
    """
    others = [positions[j] for j in range(len(shapes)) if j != i and shapes[j] == shapes[i]]
    if not others:
        return ""
    p = positions[i]
    if all(p[0] < o[0] and abs(p[0] - o[0]) > abs(p[1] - o[1]) for o in others):
        return "top "
    if all(p[0] > o[0] and abs(p[0] - o[0]) > abs(p[1] - o[1]) for o in others):
        return "bottom "
    if all(p[1] < o[1] for o in others):
        return "left "
    if all(p[1] > o[1] for o in others):
        return "right "
    return "middle "


def _located_layouts(positions: np.ndarray, location: str) -> list[tuple[int, tuple[int, ...]]]:
    """Every ``(hole, same-shape holes)`` for which :func:`hole_location` of ``hole`` gives ``location``."""
    layouts = []
    n = len(positions)
    for hole in range(n):
        rest = [j for j in range(n) if j != hole]
        for k in range(1, n):
            for group in combinations(rest, k):
                shapes = [1 if j == hole or j in group else -1 - j for j in range(n)]
                if hole_location(hole, shapes, positions) == f"{location} ":
                    layouts.append((hole, group))
    return layouts


@dataclass
class AssemblingKitsSeq(Task):
    """CLIPort's assembling-kits-seq; :attr:`variant` ``"seen"``, ``"unseen"`` or ``"full"`` picks the colours
    (and ``"full"`` the shapes: all 20 on every split, else train shapes on train and unseen shapes on val/test)."""

    def __post_init__(self):
        self.lang_template = "put the {color} {obj} in the {loc}{obj} hole"
        self.pos_eps = 0.01
        self.max_steps = N_OBJECTS

    def parse_instruction(self, instruction: str) -> dict:
        """Ground one step, ``"put the <colour> <shape> in the [<location>] <shape> hole"``, or the whole task,
        ``"assemble the kit"``.

        Accepted variants: an optional 'please'; the verbs put/place/move/drop/insert/fit; articles or none;
        shape names with or without 'shape' (``"letter e"``, ``"letter E shape"``, ``"triangle shape"``) and the
        synonyms rhombus, disc/disk and cross; in/into/inside; holes named top/bottom/left/right/middle; any
        case, extra whitespace and trailing punctuation. The whole task: assemble/complete/finish/fill the kit.

        Returns:
            ``{"color": c, "shape": s}`` plus ``"location"`` when one is named, for a step (the scene is built
            so that this is the first step); ``{}`` for the whole task.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."``, naming each word
                that was not understood, or the hole's shape when it differs from the shape's.
        """
        try:
            found = GRAMMAR.parse(mark_unknown_letters(instruction))
        except ValueError as step_error:
            try:
                KIT_GRAMMAR.parse(instruction)
                return {}
            except ValueError as kit_error:
                words = words_of(instruction)
                raise (kit_error if words and words[0] in KIT_VERBS else step_error) from None
        if found["shape"] != found["hole shape"]:
            understood = ", ".join(f"{role} '{found[role]}'" for role in ("shape", "colour", "location")
                                   if role in found)
            raise ValueError(f"cannot ground the instruction. Understood: {understood}. Not understood: hole shape "
                             f"'{found['hole shape']}' (a {spoken(found['shape'])} only fits a "
                             f"{spoken(found['shape'])} hole).")
        goal = {"color": found["colour"], "shape": found["shape"]}
        if "location" in found:
            goal["location"] = found["location"]
        return goal

    def shape_pool(self, split: str) -> tuple[str, ...]:
        """Shape names this variant draws from on ``split`` (module docstring: CLIPort's shape split)."""
        return values_for("shape", split, "full" if self.variant == "full" else "unseen")

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        placed: list = []
        kit_radius = float(np.hypot(KIT_SIZE[0], KIT_SIZE[1])) / 2
        kit_pose = self.sample_pose(rng, kit_radius, placed)
        if kit_pose is None:
            raise TaskError(f"no room on the table for the {KIT_SIZE[0]:.2f} x {KIT_SIZE[1]:.2f} m kit")
        positions = np.array([multiply(kit_pose, (np.array([dx, dy, 0.0]), np.array([0, 0, 0, 1.0])))[0][:2]
                              for dx, dy in HOLE_OFFSETS])
        shapes, colors, order = self._sample_attributes(rng, split, positions, goal)
        kit_top = KIT_SIZE[2]
        kit = create_box(scene.client, kit_pose[0] + [0, 0, kit_top / 2], kit_pose[1], KIT_SIZE, KIT_COLOR, mass=0)
        scene.add_object(kit, "kit", "", KIT_SIZE, fixed=True)
        holes: list[Pose] = []
        for i, name in enumerate(shapes):
            hole = (np.array([*positions[i], kit_top]), yaw_to_quat(rng.uniform(0, 2 * np.pi)))
            body = create_hole(scene.client, KIT_SHAPES.index(name), hole)
            scene.add_object(body, f"{name} hole", "", (SHAPE_SIZE, SHAPE_SIZE, 0.001), fixed=True)
            holes.append(hole)
        objects, symmetries = [], []
        for i, name in enumerate(shapes):
            shape_id = KIT_SHAPES.index(name)
            pose = self.sample_pose(rng, SHAPE_SIZE / 2, placed)
            if pose is None:
                raise TaskError(f"no room on the table for the {colors[i]} {name} (shape {i + 1} of {N_OBJECTS}); "
                                "the workspace is too small for the kit and five shapes")
            made = create_shape(scene.client, shape_id, pose, COLORS[colors[i]])
            scene.add_object(made.body, name, colors[i], (SHAPE_SIZE, SHAPE_SIZE, SHAPE_HEIGHT))
            objects.append(made.body)
            symmetries.append(made.symmetry)
        self.goal_attributes = {}
        for step, i in enumerate(order):
            instruction = self.lang_template.format(color=colors[i], obj=spoken(shapes[i]),
                                                    loc=hole_location(i, [KIT_SHAPES.index(s) for s in shapes],
                                                                      positions))
            self.goals.append(Goal(objects=[objects[i]], symmetries=[symmetries[i]], matches=np.ones((1, 1), bool),
                                   targets=[holes[i]], replace=False, rotations=True, metric="pose",
                                   max_reward=1 / N_OBJECTS, instruction=instruction))
            self.goal_attributes[f"color {step + 1}"] = ("color", colors[i])
            self.goal_attributes[f"shape {step + 1}"] = ("shape", shapes[i])
        self.max_steps = N_OBJECTS
        return self.goals[0].instruction

    def _sample_attributes(self, rng: np.random.Generator, split: str, positions: np.ndarray,
                           goal: dict) -> tuple[list[str], list[str], list[int]]:
        """Shapes and colours of the five holes and the goal order, honouring an instruction's overrides.

        Without overrides (CLIPort): shapes drawn with replacement from :meth:`shape_pool`, distinct colours from
        the variant's palette, a random goal order. With ``goal = {"color", "shape"[, "location"]}`` the first
        goal's shape and colour are those; without a location that shape is the only one of its kind (so the
        step is unambiguous), with one the same shape fills a set of holes chosen so that the first goal's hole
        is the named one among them.

        Raises:
            ValueError: for a location no hole can have on this kit (never for the five CLIPort locations).
        """
        pool = list(self.shape_pool(split))
        palette = [str(c) for c in rng.permutation(colors_for(split, self.variant))]
        shapes = [str(s) for s in rng.choice(pool, N_OBJECTS)]
        colors = palette[:N_OBJECTS]
        order = [int(i) for i in rng.permutation(N_OBJECTS)]
        if not goal:
            return shapes, colors, order
        shape, color = goal.get("shape", shapes[order[0]]), goal.get("color", colors[order[0]])
        first, same = order[0], ()
        if goal.get("location"):
            layouts = _located_layouts(positions, goal["location"])
            if not layouts:
                raise ValueError(f"no hole of this kit is the {goal['location']} one; known locations: "
                                 f"{', '.join(LOCATIONS)}")
            first, same = layouts[int(rng.integers(len(layouts)))]
            order.remove(first)
            order.insert(0, first)
        others = [s for s in pool if s != shape] or [s for s in KIT_SHAPES if s != shape]
        for i in range(N_OBJECTS):
            if i == first or i in same:
                shapes[i] = shape
            elif shapes[i] == shape:
                shapes[i] = str(rng.choice(others))
        rest = [c for c in palette if c != color] + [c for c in ALL_COLORS if c != color and c not in palette]
        colors = rest[:N_OBJECTS]
        colors.insert(first, color)
        return shapes, colors[:N_OBJECTS], order


def _make(variant: str) -> AssemblingKitsSeq:
    name = f"{FAMILY}-{variant}{'-colors' if variant != 'full' else ''}"
    return AssemblingKitsSeq(name=name, variant=variant)


#: Registered variants (``vlarm.tasks.make_task``): name -> factory.
VARIANTS = {f"{FAMILY}-{v}{'-colors' if v != 'full' else ''}": (lambda v=v: _make(v))
            for v in ("seen", "unseen", "full")}

__all__ = ["AssemblingKitsSeq", "EXAMPLE", "FAMILY", "GRAMMAR", "KIT_GRAMMAR", "SHAPE_WORDS", "VARIANTS",
           "hole_location", "mark_unknown_letters", "spoken"]
