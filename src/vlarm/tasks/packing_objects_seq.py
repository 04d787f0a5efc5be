"""packing-{seen,unseen}-objects-seq: pack named objects into the brown box one at a time, in a given order.

CLIPort's packing-{seen,unseen}-google-objects-seq (Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A) on the
:mod:`vlarm.sim.objects` set (scene, box and splits: :mod:`vlarm.tasks.packing_objects`). The scene holds 4-6
objects of distinct names; 1 to n-1 of them are packed, in a random order, one goal per object, each worth 1/k of
the reward and with its own instruction (CLIPort's template ``"pack the {obj} in the brown box"``); one mistake is
allowed (``max_steps = k + 1``). Every goal is judged on the current state, so taking a packed object out of the box
undoes its credit. A grounded instruction ("pack the hammer in the brown box") packs just that object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlarm.sim import Scene
from vlarm.tasks.base import Goal, TaskError
from vlarm.tasks.language import Grammar, Slot
from vlarm.tasks.packing import action_slot, pack_slots
from vlarm.tasks.packing_objects import N_OBJECTS, OBJECT_HINT, PackingObjects, object_vocabulary

FAMILY = "packing-objects-seq"
EXAMPLE = "pack the rubber duck in the brown box"

#: ``[please] VERB [the|a|an] OBJECT in|into|inside [the] [brown] box|container [please]``; one object, named in
#: the singular ('all' and plurals belong to the group task).
GRAMMAR = Grammar(
    form="'pack the <object> in the brown box'",
    slots=(
        action_slot(),
        Slot("object", object_vocabulary(), OBJECT_HINT, determiners=True),
        *pack_slots(),
    ),
    report_order=("object", "target"),
    determiners=("the", "a", "an"),
)


@dataclass
class PackingObjectsSeq(PackingObjects):
    """CLIPort's packing-google-objects-seq on the named-object set; :attr:`variant` ``"seen"`` or ``"unseen"``."""

    grammar = GRAMMAR

    def __post_init__(self):
        self.lang_template = "pack the {obj} in the brown box"


    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        pool = list(self.object_pool(split))
        n = int(rng.integers(N_OBJECTS[0], N_OBJECTS[1] + 1))
        if "object" in goal:
            first = self.check_name(goal["object"])
            others = [name for name in pool if name != first]
            names = [first] + [str(x) for x in rng.choice(others, n - 1, replace=False)]
            n_pack = 1
        else:
            names = [str(x) for x in rng.choice(pool, n, replace=False)]
            n_pack = int(rng.integers(1, n))   # CLIPort: 1 to n-1 of the objects, in a random order
        n_pack = self.fit_pack(names[:n_pack])
        placed: list = []
        box, targets = self.place_box(scene, rng, names[:n_pack], placed)
        bodies = self.place_objects(scene, rng, names, placed)
        packed = [(name, body, target) for name, body, target in zip(names, bodies[:n_pack], targets, strict=False)
                  if body is not None]
        if not packed:
            raise TaskError("the table had no room for any object to pack")
        for name, body, target in packed:
            self.goals.append(Goal(objects=[body], symmetries=[0.0], matches=np.ones((1, 1), dtype=bool),
                                   targets=[target], replace=False, rotations=True, metric="zone",
                                   max_reward=1.0 / len(packed), zones=[box.zone],
                                   instruction=self.lang_template.format(obj=name)))
        self.max_steps = len(packed) + 1
        self.goal_attributes = {f"object {i + 1}": ("object", name) for i, (name, _, _) in enumerate(packed)}
        return self.goals[0].instruction


#: Registered variants (``vlarm.tasks.make_task``): name -> factory. No ``-full`` variant: ``seen`` already draws
#: from every name on every split (CLIPort has none either).
VARIANTS = {f"packing-{v}-objects-seq": (lambda v=v: PackingObjectsSeq(name=f"packing-{v}-objects-seq", variant=v))
            for v in ("seen", "unseen")}
