"""Packing named objects into the brown box: the common part of packing-{seen,unseen}-objects-{seq,group}.

CLIPort's packing-{seen,unseen}-google-objects-{seq,group} (Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A)
with :mod:`vlarm.sim.objects` standing in for the Google scanned objects, so the tasks carry their own names.
Scene: a fixed brown box with a random inner footprint of 20-35 cm a side (CLIPort's range), enlarged when the
objects to pack need more room, and 4-6 named objects upright at random table poses (CLIPort draws one object per
k-d cell of the box, about 4-6). Each object to pack gets its own slot in the box (:func:`shelf_layout`, 1.2 cm
clearance), which is where the oracle puts it; success is the 'zone' metric (the share of the object's points inside
the box's footprint), so any pose inside the box counts. The variants differ in the names they draw:
``seen`` draws from all 56 names on every split, ``unseen`` from the 37 training names on train and the 19
evaluation names on val/test (:data:`vlarm.tasks.attributes.TRAIN_OBJECTS` / ``EVAL_OBJECTS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vlarm.sim import Scene
from vlarm.sim.objects import OBJECT_NAMES, create_object, footprint, object_points, object_spec
from vlarm.sim.transforms import quat_to_yaw
from vlarm.tasks.attributes import values_for
from vlarm.tasks.base import Task, TaskError
from vlarm.tasks.language import Grammar
from vlarm.tasks.packing import Box, add_box, shelf_layout

#: CLIPort's random box size range (inner side, metres).
BOX_SIZE_RANGE = (0.2, 0.35)
#: Clearance around every object's slot in the box, metres.
SLOT_CLEARANCE = 0.012
#: The box's inner half-diagonal may not exceed this (so the whole box stays in the 50 cm-wide workspace), metres.
MAX_BOX_RADIUS = 0.24
#: How many objects a scene holds (CLIPort: one per k-d cell of the box, about 4-6).
N_OBJECTS = (4, 6)


def plural(name: str) -> str:
    """English plural of an object name (its last word), e.g. ``"butter knife"`` -> ``"butter knives"``."""
    head, _, last = name.rpartition(" ")
    irregular = {"knife": "knives", "mouse": "mice", "dice": "dice", "scissors": "scissors",
                 "sunglasses": "sunglasses", "starfish": "starfish", "glass": "glasses"}
    if last in irregular:
        word = irregular[last]
    elif last.endswith(("s", "x", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def object_vocabulary(plurals: bool = False) -> dict[str, str]:
    """Phrase -> object name for the grammars: every name, its last word where that word ends no other name and
    is not a name itself (so 'duck' grounds to 'rubber duck' and 'bear' to 'teddy bear'), and, with ``plurals``,
    the plural of each ('rubber ducks', 'ducks')."""
    heads: dict[str, list[str]] = {}
    for name in OBJECT_NAMES:
        heads.setdefault(name.rpartition(" ")[2], []).append(name)
    vocabulary = {name: name for name in OBJECT_NAMES}
    vocabulary.update({head: names[0] for head, names in heads.items()
                       if len(names) == 1 and head not in vocabulary})
    if plurals:
        vocabulary.update({plural(phrase): name for phrase, name in list(vocabulary.items())})
    return vocabulary


#: A short hint listing some names, for grammar errors (all 56 would drown the message).
OBJECT_HINT = f"known objects include: {', '.join(OBJECT_NAMES[:6])}, ... ({len(OBJECT_NAMES)} in all, " \
              "vlarm.sim.objects.OBJECT_NAMES)"


@dataclass
class PackingObjects(Task):
    """Base of the named-object packing tasks (module docstring); subclasses choose the names and set the goals.

    Subclasses set :attr:`grammar`, the family's instruction grammar, whose ``"object"`` role names the object.
    """

    grammar: ClassVar[Grammar]

    def parse_instruction(self, instruction: str) -> dict:
        """Ground an instruction with :attr:`grammar` to ``{"object": name}`` (the subclass's module documents the
        accepted forms; object names may be shortened to their last word where it is unique, e.g. 'duck').

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."``.
        """
        return {"object": self.grammar.parse(instruction)["object"]}

    def attribute_variant(self, kind: str) -> str:
        """``"full"`` for the objects of a ``seen`` variant (all 56 names on every split, so none is novel)."""
        return "full" if kind == "object" and self.variant == "seen" else self.variant

    def object_pool(self, split: str) -> tuple[str, ...]:
        """Names this variant draws on ``split``: all 56 for ``seen``, the split's list for ``unseen``.

        Raises:
            ValueError: for an unknown split or variant.
        """
        return values_for("object", split, self.attribute_variant("object"))

    @staticmethod
    def check_name(name: str) -> str:
        """``name`` if it is an object name, else ValueError naming a few valid ones."""
        if name not in OBJECT_NAMES:
            raise ValueError(f"unknown object {name!r}; {OBJECT_HINT}")
        return name

    def fit_pack(self, names: list[str]) -> int:
        """How many of ``names`` (in order, at least one) fit a box within :data:`MAX_BOX_RADIUS`."""
        for n in range(len(names), 0, -1):
            _, need = shelf_layout([footprint(x) for x in names[:n]], SLOT_CLEARANCE)
            if 0.5 * math.hypot(*need) <= MAX_BOX_RADIUS:
                return n
        return 1

    def place_box(self, scene: Scene, rng: np.random.Generator, pack: list[str], placed: list) -> tuple[Box, list]:
        """Add the brown box sized for ``pack`` and return it with each packed object's target pose (its slot).

        Raises:
            TaskError: when the box finds no free pose (it is placed first, so only a bad workspace causes this).
        """
        slots, need = shelf_layout([footprint(x) for x in pack], SLOT_CLEARANCE)
        size = [max(need[k], rng.uniform(*BOX_SIZE_RANGE)) for k in range(2)]
        for k in range(2):   # shrink the random part back when the half-diagonal would leave the workspace
            other = size[1 - k]
            size[k] = max(need[k], min(size[k], math.sqrt(max(0.0, (2 * MAX_BOX_RADIUS) ** 2 - other ** 2))))
        slack = np.array(size) - np.array(need)
        offset = rng.uniform(-slack / 2, slack / 2)
        box = add_box(self, scene, rng, size, placed)
        if box is None:
            raise TaskError(f"no free table pose for a {size[0]:.2f} x {size[1]:.2f} m box")
        return box, [box.target(slot + offset) for slot in slots]

    def place_objects(self, scene: Scene, rng: np.random.Generator, names: list[str], placed: list) -> list[int | None]:
        """Add named objects at free table poses (random yaw); None for an object the crowded table had no room for.

        Each body's zone points go to :attr:`Task.object_points`.
        """
        bodies: list[int | None] = []
        for name in names:
            radius = 0.5 * math.hypot(*footprint(name))
            pose = self.sample_pose(rng, radius, placed)
            if pose is None:
                bodies.append(None)
                continue
            body = create_object(scene.client, name, pose[0], quat_to_yaw(pose[1]))
            height = float(object_points(name)[:, 2].max())
            scene.add_object(body, name, object_spec(name).color, (*footprint(name), height))
            self.object_points[body] = object_points(name)
            bodies.append(body)
        return bodies


__all__ = ["BOX_SIZE_RANGE", "N_OBJECTS", "OBJECT_HINT", "PackingObjects", "SLOT_CLEARANCE", "plural"]
