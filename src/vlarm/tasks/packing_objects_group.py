"""packing-{seen,unseen}-objects-group: pack every object of one name into the brown box, among distractors.

CLIPort's packing-{seen,unseen}-google-objects-group (Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A) on the
:mod:`vlarm.sim.objects` set (scene, box and splits: :mod:`vlarm.tasks.packing_objects`). The scene holds 4-6
objects: two of the goal name, two of a distractor name, the rest drawn with replacement (so more of either may
appear, as in CLIPort). One goal, worth 1, covers every object of the goal name (CLIPort's template ``"pack all the
{obj} objects in the brown box"``, 'zone' metric, each object to its own slot); one mistake is allowed
(``max_steps = k + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlarm.sim import Scene
from vlarm.tasks.base import Goal, TaskError
from vlarm.tasks.language import Grammar, Slot, phrases
from vlarm.tasks.packing import action_slot, pack_slots
from vlarm.tasks.packing_objects import N_OBJECTS, OBJECT_HINT, PackingObjects, object_vocabulary

FAMILY = "packing-objects-group"
EXAMPLE = "pack all the mug objects in the brown box"

#: ``[please] VERB all [of] [the] OBJECT [objects] in|into|inside [the] [brown] box [please]``: 'all' (or 'every')
#: is required (without it the instruction names one object, the seq task); the name may be plural.
GRAMMAR = Grammar(
    form="'pack all the <object> objects in the brown box'",
    slots=(
        action_slot(),
        Slot("all", phrases("all", "all of", "every", meaning=""), "say 'all the <object> objects'", structural=True),
        Slot("object", object_vocabulary(plurals=True), OBJECT_HINT, determiners=True),
        Slot("noun", phrases("objects", "object", "items", "things", meaning=""), "", optional=True),
        *pack_slots(),
    ),
    report_order=("object", "target"),
    determiners=("the",),
)


@dataclass
class PackingObjectsGroup(PackingObjects):
    """CLIPort's packing-google-objects-group on the named-object set; :attr:`variant` ``"seen"`` or ``"unseen"``."""

    grammar = GRAMMAR

    def __post_init__(self):
        self.lang_template = "pack all the {obj} objects in the brown box"


    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        pool = list(self.object_pool(split))
        k = int(rng.integers(N_OBJECTS[0], N_OBJECTS[1] + 1))
        if "object" in goal:
            target = self.check_name(goal["object"])
            distractor = str(rng.choice([name for name in pool if name != target]))
        else:
            target, distractor = (str(x) for x in rng.choice(pool, 2, replace=False))
        names = [target, target, distractor, distractor] + [str(x) for x in rng.choice(pool, k - 4, replace=True)]
        fits = self.fit_pack([target] * names.count(target))
        while names.count(target) > fits:   # more copies than the box holds: the surplus becomes other names
            names[len(names) - 1 - names[::-1].index(target)] = str(rng.choice([x for x in pool if x != target]))
        n_pack = names.count(target)
        placed: list = []
        box, slots = self.place_box(scene, rng, [target] * n_pack, placed)
        bodies = self.place_objects(scene, rng, names, placed)
        packed = [b for name, b in zip(names, bodies, strict=True) if name == target and b is not None]
        if not packed:
            raise TaskError("the table had no room for any object to pack")
        self.goals.append(Goal(objects=packed, symmetries=[0.0] * len(packed),
                               matches=np.eye(len(packed), dtype=bool), targets=slots[:len(packed)],
                               replace=False, rotations=True, metric="zone", max_reward=1.0, zones=[box.zone]))
        self.max_steps = len(packed) + 1
        self.goal_attributes = {"object": ("object", target)}
        return self.lang_template.format(obj=target)


#: Registered variants (``vlarm.tasks.make_task``): name -> factory. No ``-full`` variant: ``seen`` already draws
#: from every name on every split (CLIPort has none either).
VARIANTS = {f"packing-{v}-objects-group": (lambda v=v: PackingObjectsGroup(name=f"packing-{v}-objects-group",
                                                                            variant=v))
            for v in ("seen", "unseen")}
