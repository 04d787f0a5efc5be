"""put-block-in-bowl (CLIPort, Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A).

Scene: 1-3 fixed bowls of the place colour, 1..n_bowls blocks of the pick colour, and 6 distractors (blocks or
bowls, 50/50) whose colours cycle through every palette colour other than the two goal colours. Goal: every
pick-colour block in some place-colour bowl ('pose' metric, 5 cm, yaw ignored); one mistake allowed
(``max_steps = n_blocks + 1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vlarm.sim import Scene
from vlarm.sim.assets import BLOCK_SIZE, BOWL_RADIUS
from vlarm.tasks.attributes import ALL_COLORS, COLORS, colors_for
from vlarm.tasks.base import Goal, Task

BLOCK_RADIUS = BLOCK_SIZE * 0.75   # footprint radius used for collision-free sampling, metres
MAX_DISTRACTORS = 6

_INSTRUCTION = re.compile(
    r"^\s*(?:please\s+)?(?:put|place|move|drop)\s+(?:all\s+)?(?:the\s+)?(?P<pick>[\w-]+)\s+(?P<obj>[\w-]+?)s?\s+"
    r"(?:in|into|inside|on)\s+(?:a|an|the)\s+(?P<place>[\w-]+)\s+(?P<target>[\w-]+?)s?\s*[.!]?\s*$",
    re.IGNORECASE,
)


@dataclass
class PutBlockInBowl(Task):
    """CLIPort's put-block-in-bowl; ``unseen=True`` is the unseen-colours variant."""

    unseen: bool = False

    def __post_init__(self):
        self.lang_template = "put the {pick} blocks in a {place} bowl"
        self.pos_eps = 0.05

    def parse_instruction(self, instruction: str) -> dict:
        """Ground ``"put the <colour> blocks in a <colour> bowl"`` to ``{"pick": c1, "place": c2}``.

        Raises:
            ValueError: naming what was understood and what was not (unknown colour, object or phrasing).
        """
        m = _INSTRUCTION.match(instruction)
        if m is None:
            raise ValueError(
                f"could not parse {instruction!r}: expected the form 'put the <colour> blocks in a <colour> bowl' "
                f"(colours: {', '.join(ALL_COLORS)})")
        pick, obj = m["pick"].lower(), m["obj"].lower()
        place, target = m["place"].lower(), m["target"].lower()
        understood, problems = [], []
        for word, kind, valid in ((obj, "object", ("block",)), (target, "target", ("bowl",))):
            (understood if word in valid else problems).append(
                f"{kind} '{word}'" + ("" if word in valid else f" (this task knows: {', '.join(valid)})"))
        for word, role in ((pick, "pick colour"), (place, "place colour")):
            (understood if word in COLORS else problems).append(
                f"{role} '{word}'" + ("" if word in COLORS else f" (known colours: {', '.join(ALL_COLORS)})"))
        if pick == place and pick in COLORS:
            problems.append(f"pick and place colours are both '{pick}' (they must differ)")
        if problems:
            raise ValueError(
                "cannot ground the instruction. Understood: " + (", ".join(understood) or "nothing")
                + ". Not understood: " + "; ".join(problems) + ".")
        return {"pick": pick, "place": place}

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        n_bowls = int(rng.integers(1, 4))
        n_blocks = int(rng.integers(1, n_bowls + 1))
        palette = colors_for(split, self.unseen)
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
        return self.lang_template.format(pick=pick_color, place=place_color)
