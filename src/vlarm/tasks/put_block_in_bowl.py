"""put-block-in-bowl (CLIPort, Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A).

Scene: 1-3 fixed bowls of the place colour, 1..n_bowls blocks of the pick colour, and 6 distractors (blocks or
bowls, 50/50) whose colours cycle through every palette colour other than the two goal colours. Goal: every
pick-colour block in some place-colour bowl ('pose' metric, 5 cm, yaw ignored); one mistake allowed
(``max_steps = n_blocks + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlarm.sim import Scene
from vlarm.sim.assets import BLOCK_SIZE, BOWL_RADIUS
from vlarm.tasks.attributes import COLORS, colors_for
from vlarm.tasks.base import Goal, Task
from vlarm.tasks.language import BLOCK_WORDS, COLOR_WORDS, Grammar, Slot, phrases
from vlarm.tasks.language import COLOR_HINT as _COLOR_HINT

BLOCK_RADIUS = BLOCK_SIZE * 0.75   # footprint radius used for collision-free sampling, metres
MAX_DISTRACTORS = 6

FAMILY = "put-block-in-bowl"
EXAMPLE = "put the red blocks in a green bowl"

#: The instruction grammar: [please] VERB [the|a|an|all ...] COLOUR OBJECT PREPOSITION [the|a|an|all ...] COLOUR
#: TARGET [please], in any case, with any whitespace and trailing punctuation; nouns singular or plural.
VERBS: tuple[str, ...] = ("put", "place", "move", "drop")
PREPOSITIONS: tuple[str, ...] = ("in", "into", "inside", "on", "onto", "to")
GRAMMAR = Grammar(
    form="'put the <colour> blocks in a <colour> bowl'",
    slots=(
        Slot("action", phrases(*VERBS, meaning=""), f"known actions: {', '.join(VERBS)}", structural=True),
        Slot("pick colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("object", BLOCK_WORDS, "this task knows: block (or cube)"),
        Slot("preposition", phrases(*PREPOSITIONS, meaning=""), f"known prepositions: {', '.join(PREPOSITIONS)}",
             structural=True),
        Slot("place colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("target", {"bowl": "bowl", "bowls": "bowl"}, "this task knows: bowl"),
    ),
    report_order=("object", "target", "pick colour", "place colour"),
    distinct=(("pick colour", "place colour"),),
)


@dataclass
class PutBlockInBowl(Task):
    """CLIPort's put-block-in-bowl; :attr:`variant` ``"seen"``, ``"unseen"`` or ``"full"`` picks the colours."""

    def __post_init__(self):
        self.lang_template = "put the {pick} blocks in a {place} bowl"
        self.pos_eps = 0.05

    def parse_instruction(self, instruction: str) -> dict:
        """Ground ``"put the <colour> blocks in a <colour> bowl"`` to ``{"pick": c1, "place": c2}``.

        Accepted variants: an optional 'please'; the verbs put/place/move/drop; articles the/a/an/all (or
        none) before each noun; 'block(s)' and 'bowl(s)'; the prepositions in/into/inside/on/onto/to; any case,
        extra whitespace and trailing punctuation.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."``, naming each
                word that was not understood (echoing at most ~100 characters of the input).
        """
        found = GRAMMAR.parse(instruction)
        return {"pick": found["pick colour"], "place": found["place colour"]}

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        n_bowls = int(rng.integers(1, 4))
        n_blocks = int(rng.integers(1, n_bowls + 1))
        palette = colors_for(split, self.variant)
        chosen = [str(c) for c in rng.choice(palette, 2, replace=False)]
        pick_color, place_color = goal.get("pick", chosen[0]), goal.get("place", chosen[1])
        placed: list = []
        bowl_poses = []
        for _ in range(n_bowls):
            pose = self.sample_pose(rng, BOWL_RADIUS, placed)
            if pose is None:
                continue
            scene.add_bowl(pose, COLORS[place_color], place_color, fixed=True)
            bowl_poses.append(pose)
        blocks = []
        for _ in range(n_blocks):
            pose = self.sample_pose(rng, BLOCK_RADIUS, placed)
            if pose is None:
                continue
            blocks.append(scene.add_block(pose, COLORS[pick_color], pick_color))
        self.goals.append(Goal(objects=blocks, symmetries=[0.0] * len(blocks),
                               matches=np.ones((len(blocks), len(bowl_poses)), dtype=bool),
                               targets=bowl_poses, replace=False, rotations=True, metric="pose",
                               max_reward=1.0))
        self.max_steps = len(blocks) + 1
        distractor_colors = [c for c in COLORS if c not in (pick_color, place_color)]
        n_distractors = 0
        for _ in range(10 * MAX_DISTRACTORS):
            if n_distractors >= MAX_DISTRACTORS:
                break
            is_block = rng.random() > 0.5
            pose = self.sample_pose(rng, BLOCK_RADIUS if is_block else BOWL_RADIUS, placed)
            if pose is None:
                continue
            color = distractor_colors[n_distractors % len(distractor_colors)]
            if is_block:
                scene.add_block(pose, COLORS[color], color)
            else:
                scene.add_bowl(pose, COLORS[color], color)
            n_distractors += 1
        self.goal_attributes = {"pick": ("color", pick_color), "place": ("color", place_color)}
        return self.lang_template.format(pick=pick_color, place=place_color)


#: Registered variants (``vlarm.tasks.make_task``): name -> factory.
VARIANTS = {f"put-block-in-bowl-{v}{'-colors' if v != 'full' else ''}": (lambda v=v: PutBlockInBowl(
    name=f"put-block-in-bowl-{v}{'-colors' if v != 'full' else ''}", variant=v)) for v in ("seen", "unseen", "full")}
