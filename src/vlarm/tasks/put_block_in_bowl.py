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
from vlarm.tasks.attributes import ALL_COLORS, COLORS, colors_for
from vlarm.tasks.base import Goal, Task

BLOCK_RADIUS = BLOCK_SIZE * 0.75   # footprint radius used for collision-free sampling, metres
MAX_DISTRACTORS = 6

#: The instruction grammar: [please] VERB [the|a|an|all ...] COLOUR OBJECT PREPOSITION [the|a|an|all ...] COLOUR
#: TARGET [please], in any case, with any whitespace and trailing punctuation; nouns singular or plural.
VERBS: tuple[str, ...] = ("put", "place", "move", "drop")
PREPOSITIONS: tuple[str, ...] = ("in", "into", "inside", "on", "onto", "to")
DETERMINERS: tuple[str, ...] = ("the", "a", "an", "all")
OBJECTS: dict[str, str] = {"block": "block", "blocks": "block"}
TARGETS: dict[str, str] = {"bowl": "bowl", "bowls": "bowl"}
COLOR_ALIASES: dict[str, str] = {"grey": "gray"}
FORM = "'put the <colour> blocks in a <colour> bowl'"
_PUNCTUATION = ".,;:!?\"'`()"
_ECHO = 100   # at most this many characters of the user's text are echoed in an error


def _echo(text: str, limit: int = _ECHO) -> str:
    """``text`` quoted, cut to ``limit`` characters with an ellipsis."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "\u2026")


def _words(instruction: str) -> list[str]:
    """Lower-case words with surrounding punctuation removed and a leading/trailing 'please' dropped."""
    words = [w.strip(_PUNCTUATION) for w in instruction.lower().split()]
    words = [w for w in words if w]
    if words and words[0] == "please":
        words = words[1:]
    if words and words[-1] == "please":
        words = words[:-1]
    return words


@dataclass
class PutBlockInBowl(Task):
    """CLIPort's put-block-in-bowl; ``unseen=True`` is the unseen-colours variant."""

    unseen: bool = False

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
        words = _words(instruction)
        colour_names = ", ".join(ALL_COLORS)
        if not words:
            raise ValueError(f"cannot ground the instruction. Understood: nothing. Not understood: an empty "
                             f"instruction (expected the form {FORM}).")
        later = set(VERBS) | set(PREPOSITIONS) | set(DETERMINERS) | set(OBJECTS) | set(TARGETS) | set(COLORS)
        slots = (  # role, vocabulary (word -> meaning), hint when the word is unknown or missing
            ("action", dict.fromkeys(VERBS, ""), f"known actions: {', '.join(VERBS)}"),
            ("pick colour", {**{c: c for c in COLORS}, **COLOR_ALIASES}, f"known colours: {colour_names}"),
            ("object", OBJECTS, "this task knows: block"),
            ("preposition", dict.fromkeys(PREPOSITIONS, ""), f"known prepositions: {', '.join(PREPOSITIONS)}"),
            ("place colour", {**{c: c for c in COLORS}, **COLOR_ALIASES}, f"known colours: {colour_names}"),
            ("target", TARGETS, "this task knows: bowl"),
        )
        found: dict[str, str] = {}
        problems: list[str] = []
        structural = False   # a missing, misplaced or extra word (not just an unknown colour or noun)
        i = 0
        for role, vocabulary, hint in slots:
            if role in ("pick colour", "place colour"):
                while i < len(words) and words[i] in DETERMINERS:
                    i += 1
            word = words[i] if i < len(words) else None
            if word is not None and word in vocabulary:
                found[role] = vocabulary[word]
                i += 1
            elif word is None or word in later:   # the word belongs to a later slot: this one was left out
                problems.append(f"no {role} ({hint})")
                structural = True
            elif i + 1 < len(words) and words[i + 1] in vocabulary:   # an unknown word before a known one
                problems.append(f"{_echo(word, 40)} before '{words[i + 1]}' (not a word this task knows)")
                structural = True
                found[role] = vocabulary[words[i + 1]]
                i += 2
            else:
                problems.append(f"{role} {_echo(word, 40)} ({hint})")
                structural |= role in ("action", "preposition")
                i += 1
        if i < len(words):
            problems.append(f"extra words {_echo(' '.join(words[i:]), 60)} after the target")
            structural = True
        pick, place = found.get("pick colour"), found.get("place colour")
        if pick is not None and pick == place:
            problems.append(f"pick and place colours are both '{pick}' (they must differ)")
        if problems:
            understood = [f"{role} '{found[role]}'" for role in ("object", "target", "pick colour", "place colour")
                          if role in found]
            if not understood:
                problems = [f"{_echo(instruction.strip())} (expected the form {FORM}; known colours: {colour_names})"]
            elif structural:
                problems.append(f"expected the form {FORM}")
            raise ValueError("cannot ground the instruction. Understood: " + (", ".join(understood) or "nothing")
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
        self.goal_attributes = {"pick": ("color", pick_color), "place": ("color", place_color)}
        return self.lang_template.format(pick=pick_color, place=place_color)
