"""towers-of-hanoi-seq (CLIPort, Shridhar et al. CoRL 2021, Sec. 4.1 and Appendix A; Ravens ``TowersOfHanoi``,
Zeng et al. CoRL 2020).

Scene: a fixed stand of three brown tiles with a peg each (lighter brown side, middle of the stand, darker brown
side; :mod:`vlarm.sim.stands`) and three rings of three distinct goal colours from the variant's palette, stacked
largest first on the lighter brown side's peg. The rings go to the darker brown side (CLIPort) or, when an
instruction asks, to the middle of the stand, in the optimal 7-move sequence; each move is one goal with its own
instruction (CLIPort's template ``"move the {obj} ring to the {loc}"``), worth 1/7. Fourteen steps are allowed
(CLIPort's ``max_steps``).

Judging the final state: Hanoi's step goals are intermediate states (the smallest ring visits every peg), so
they cannot all hold at the end, and Ravens' banked rewards do not carry over. vlarm reads the puzzle's
configuration from the current poses (which rings sit on which peg, bottom to top; a ring is on a peg when its
centre is within ``pos_eps`` = 1 cm of the peg in xy and below the peg's top) and credits ``k / 7``, where ``k`` is
the furthest point of the solution the configuration shows: the state after ``k`` moves, possibly with the ring
that move ``k + 1`` carries anywhere else (lifted, dropped on the table, or on a wrong peg, from where that one move
still completes the step). A configuration off the solution path (a finished tower taken apart, rings piled on
a wrong peg) earns 0, so a tower taken apart loses its credit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vlarm.sim import Scene, pixel_to_xyz
from vlarm.sim.arm import TOOL_RADIUS
from vlarm.sim.scene import Observation
from vlarm.sim.stands import (
    HANOI_BASE_HEIGHT,
    HANOI_TILE,
    PEG_HEIGHT,
    PEG_RADIUS,
    RING_HEIGHT,
    RING_OUTER_RADII,
    create_hanoi_stand,
    create_ring,
    peg_positions,
)
from vlarm.sim.transforms import Pose
from vlarm.tasks.attributes import COLORS, colors_for
from vlarm.tasks.base import Action, Goal, Task, TaskError, check_color_overrides
from vlarm.tasks.language import COLOR_HINT as _COLOR_HINT
from vlarm.tasks.language import COLOR_WORDS, Grammar, Slot, parse_any, phrases

FAMILY = "towers-of-hanoi-seq"
EXAMPLE = "solve the towers of hanoi"

N_RINGS = len(RING_OUTER_RADII)
#: The pegs as CLIPort's instructions name them, in stand order (-y to +y).
LOCATIONS: tuple[str, ...] = ("lighter brown side", "middle of the stand", "darker brown side")
START_PEG = 0
DEFAULT_TARGET_PEG = 2
#: Footprint radius of the stand (half its 12 x 36 cm diagonal), metres.
STAND_RADIUS = float(np.hypot(1.5 * HANOI_TILE, 0.5 * HANOI_TILE))
#: The oracle touches a ring at least this far from its centre, so the suction tool clears the peg, metres.
PICK_MIN_RADIUS = PEG_RADIUS + TOOL_RADIUS + 0.003
PICK_EDGE_MARGIN = 0.004   # ... and at least this far inside the ring's outer edge, metres
MAX_STEPS = 14

_MOVES = ("move", "put", "place", "transfer", "stack", "slide", "drop")
_TO = ("to", "onto", "on", "on to", "over", "in")
_PLACES = {"lighter brown side": 0, "light brown side": 0, "lightest brown side": 0, "lighter side": 0,
           "middle of the stand": 1, "middle": 1, "center of the stand": 1, "centre of the stand": 1, "center": 1,
           "centre": 1, "middle peg": 1,
           "darker brown side": 2, "dark brown side": 2, "darkest brown side": 2, "darker side": 2}
_PLACE_HINT = f"known places: {', '.join(LOCATIONS)}"

#: One step: "move the red ring to the middle of the stand".
STEP = Grammar(
    form="'move the <colour> ring to the darker brown side'",
    slots=(
        Slot("action", phrases(*_MOVES, meaning=""), f"known actions: {', '.join(_MOVES)}", structural=True),
        Slot("ring colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("object", {"ring": "ring", "disk": "ring", "disc": "ring"}, "this task knows: ring"),
        Slot("preposition", phrases(*_TO, meaning=""), f"known prepositions: {', '.join(_TO)}", structural=True),
        Slot("place", {k: LOCATIONS[v] for k, v in _PLACES.items()}, _PLACE_HINT, determiners=True),
    ),
    report_order=("object", "ring colour", "place"),
)
#: The whole task, by its name: "solve the towers of hanoi".
SOLVE = Grammar(
    form="'solve the towers of hanoi'",
    slots=(
        Slot("action", phrases("solve", "complete", "do", "play", "finish", meaning=""),
             "known actions: solve, complete, do, play, finish", structural=True),
        Slot("puzzle", {n: "towers of hanoi" for n in ("towers of hanoi", "tower of hanoi", "hanoi", "hanoi tower",
                                                          "hanoi towers")},
             "this task solves: towers of hanoi", determiners=True),
        Slot("puzzle noun", phrases("puzzle", "game", meaning=""), "", optional=True),
    ),
)
_TARGET_HINT = (f"the rings start on the {LOCATIONS[START_PEG]}; they can go to the {LOCATIONS[1]} or the "
                f"{LOCATIONS[2]}")
#: The whole task, by its goal: "move the rings to the darker brown side" (the rings start on the lighter side:
#: that target is refused by :meth:`TowersOfHanoiSeq.parse_instruction`).
MOVE_ALL = Grammar(
    form="'move the rings to the darker brown side'",
    slots=(
        Slot("action", phrases(*_MOVES, meaning=""), f"known actions: {', '.join(_MOVES)}", structural=True),
        Slot("object", {n: "rings" for n in ("rings", "disks", "discs", "tower", "ring tower", "whole tower",
                                              "stack", "stack of rings")},
             "this task knows: rings", determiners=True),
        Slot("preposition", phrases(*_TO, meaning=""), f"known prepositions: {', '.join(_TO)}", structural=True),
        Slot("target", {k: LOCATIONS[v] for k, v in _PLACES.items()}, _TARGET_HINT, determiners=True),
    ),
    report_order=("object", "target"),
)
#: Every instruction form of the family, the per-step template first.
GRAMMARS: tuple[Grammar, ...] = (STEP, MOVE_ALL, SOLVE)


def hanoi_moves(n: int, source: int, target: int) -> list[tuple[int, int, int]]:
    """The optimal Towers-of-Hanoi solution: ``(ring, from peg, to peg)`` for each of the ``2**n - 1`` moves.

    Rings are numbered from the smallest (0); pegs 0-2.

    Raises:
        ValueError: for ``n < 1`` or pegs outside 0-2 or equal.
    """
    if n < 1 or source == target or not {source, target} <= {0, 1, 2}:
        raise ValueError(f"need n >= 1 and two different pegs in 0-2; got n={n}, {source} -> {target}")
    moves: list[tuple[int, int, int]] = []

    def solve(k: int, src: int, dst: int, via: int) -> None:
        if k < 0:
            return
        solve(k - 1, src, via, dst)
        moves.append((k, src, dst))
        solve(k - 1, via, dst, src)

    solve(n - 1, source, target, 3 - source - target)
    return moves


def hanoi_states(n: int, moves: list[tuple[int, int, int]], source: int) -> list[tuple[tuple[int, ...], ...]]:
    """The puzzle's configurations along a solution.

    Args:
        n: number of rings, all on ``source`` at the start (largest at the bottom).
        moves: ``(ring, from peg, to peg)`` moves, e.g. :func:`hanoi_moves`.
        source: the starting peg (0-2).

    Returns:
        ``len(moves) + 1`` configurations, each a tuple of three pegs holding ring indices bottom to top: the
        start, then the state after each move.

    Raises:
        ValueError: when a move takes a ring that is not on top of its 'from' peg.
    """
    pegs = [[] for _ in range(3)]
    pegs[source] = list(range(n - 1, -1, -1))
    states = [tuple(tuple(p) for p in pegs)]
    for ring, src, dst in moves:
        if not pegs[src] or pegs[src][-1] != ring:
            raise ValueError(f"move of ring {ring} from peg {src}: it is not on top of that peg ({pegs[src]})")
        pegs[src].pop()
        pegs[dst].append(ring)
        states.append(tuple(tuple(p) for p in pegs))
    return states


@dataclass
class TowersOfHanoiSeq(Task):
    """CLIPort's towers-of-hanoi-seq; :attr:`variant` ``"seen"``, ``"unseen"`` or ``"full"`` picks the colours."""

    def __post_init__(self):
        self.lang_template = "move the {obj} ring to the {loc}"
        self.pos_eps = 0.01
        self.max_steps = MAX_STEPS
        self.rings: list[int] = []
        self.pegs: list[np.ndarray] = []
        self.moves: list[tuple[int, int, int]] = []
        self.states: list[tuple[tuple[int, ...], ...]] = []

    # ------------------------------------------------------------------ language
    def parse_instruction(self, instruction: str) -> dict:
        """Ground an instruction of this family to overrides for :meth:`reset`.

        Accepted forms (an optional 'please', articles or none, any case, trailing punctuation):

        * a step, ``"move the red ring to the middle of the stand"`` (also put/place/transfer/stack/slide/drop;
          ring/disk/disc; to/onto/on/over/in; the lighter/middle/darker places and paraphrases such as 'dark
          brown side', 'centre of the stand') -> ``{"ring0": "red"}``, plus ``"target"`` when the place is not the
          lighter brown side: the smallest ring is red, and the first move of the solution is this step;
        * the whole task by its goal, ``"move the rings to the darker brown side"`` (rings/disks/tower) ->
          ``{"target": "darker brown side"}`` (or the middle of the stand; not the lighter brown side, where the
          rings start);
        * the whole task by its name, ``"solve the towers of hanoi"`` (tower of hanoi, hanoi, ... puzzle) -> ``{}``.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."`` from the form that
                came closest, naming each word that was not understood.
        """
        form, found = parse_any(GRAMMARS, instruction)
        if GRAMMARS[form] is STEP:
            out = {"ring0": found["ring colour"]}
            if found["place"] != LOCATIONS[START_PEG]:
                out["target"] = found["place"]
            return out
        if GRAMMARS[form] is MOVE_ALL:
            if found["target"] == LOCATIONS[START_PEG]:
                raise ValueError(f"cannot ground the instruction. Understood: object 'rings'. Not understood: target "
                                 f"'{LOCATIONS[START_PEG]}' ({_TARGET_HINT}).")
            return {"target": found["target"]}
        return {}

    def ring_colors(self, rng: np.random.Generator, split: str, goal: dict) -> list[str]:
        """Colours of the rings, smallest first: overrides ``goal["ring<i>"]``, the rest drawn without replacement
        from the variant's palette (CLIPort samples three).

        Raises:
            ValueError: for an unknown override key, an unknown colour or a repeated colour.
        """
        keys = [f"ring{i}" for i in range(N_RINGS)]
        given = check_color_overrides(goal, keys, "the rings", extra=("target",))
        palette = [c for c in colors_for(split, self.variant) if c not in given]
        drawn = iter(str(c) for c in rng.choice(palette, N_RINGS - len(given), replace=False))
        return [goal[k] if k in goal else next(drawn) for k in keys]

    # ------------------------------------------------------------------ scene
    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        """Place the stand and the rings on its lighter side, append one goal per move; return the whole-task
        instruction.

        Raises:
            ValueError: for bad overrides (an unknown target place, or see :meth:`ring_colors`).
            TaskError: when the stand finds no free spot on the table (a workspace too small).
        """
        colors = self.ring_colors(rng, split, goal)
        target_name = goal.get("target", LOCATIONS[DEFAULT_TARGET_PEG])
        if target_name not in LOCATIONS[1:]:
            raise ValueError(f"unknown target {target_name!r}; the rings start on the {LOCATIONS[START_PEG]} and "
                             f"can go to: {', '.join(LOCATIONS[1:])}")
        target_peg = LOCATIONS.index(target_name)
        stand_pose = self.sample_pose(rng, STAND_RADIUS, [])
        if stand_pose is None:
            raise TaskError(f"no free spot for the Hanoi stand ({2 * STAND_RADIUS:.2f} m across) in the workspace")
        stand = create_hanoi_stand(scene.client, stand_pose)
        scene.add_object(stand, "hanoi stand", "brown", (HANOI_TILE, 3 * HANOI_TILE, HANOI_BASE_HEIGHT + PEG_HEIGHT),
                         fixed=True)
        self.pegs = peg_positions(stand_pose)
        self.rings = []
        for i, color in enumerate(colors):
            level = N_RINGS - 1 - i   # the largest ring at the bottom
            centre = self.pegs[START_PEG] + [0.0, 0.0, RING_HEIGHT * (level + 0.5)]
            body = create_ring(scene.client, centre, stand_pose[1], RING_OUTER_RADII[i], COLORS[color])
            d = 2 * RING_OUTER_RADII[i]
            self.rings.append(scene.add_object(body, "ring", color, (d, d, RING_HEIGHT)))
        self.moves = hanoi_moves(N_RINGS, START_PEG, target_peg)
        self.states = hanoi_states(N_RINGS, self.moves, START_PEG)
        for k, (ring, _, dst) in enumerate(self.moves):
            level = self.states[k + 1][dst].index(ring)
            target = (self.pegs[dst] + [0.0, 0.0, RING_HEIGHT * (level + 0.5)], np.array([0.0, 0.0, 0.0, 1.0]))
            self.goals.append(Goal(objects=[self.rings[ring]], symmetries=[0.0], matches=np.ones((1, 1), dtype=bool),
                                   targets=[target], replace=False, rotations=True, metric="pose",
                                   max_reward=1.0 / len(self.moves),
                                   instruction=self.lang_template.format(obj=colors[ring], loc=LOCATIONS[dst])))
        self.goal_attributes = {f"ring{i}": ("color", c) for i, c in enumerate(colors)}
        return f"move the rings to the {target_name}"

    # ------------------------------------------------------------------ judging the state
    def _peg_of(self, pose: Pose) -> int | None:
        """The peg a ring at ``pose`` sits on (centre within ``pos_eps`` in xy and below the peg top), or None."""
        for j, peg in enumerate(self.pegs):
            near = float(np.linalg.norm(np.asarray(pose[0][:2]) - peg[:2])) < self.pos_eps
            if near and float(pose[0][2]) < peg[2] + PEG_HEIGHT:
                return j
        return None

    def configuration(self) -> tuple[tuple[tuple[int, ...], ...], frozenset[int]]:
        """The puzzle state now: per peg the ring indices bottom to top (by height), and the rings on no peg."""
        on_peg: list[list[tuple[float, int]]] = [[] for _ in range(3)]
        off = set()
        for i, body in enumerate(self.rings):
            pose = self.scene.pose(body)
            j = self._peg_of(pose)
            if j is None:
                off.add(i)
            else:
                on_peg[j].append((float(pose[0][2]), i))
        return tuple(tuple(i for _, i in sorted(p)) for p in on_peg), frozenset(off)

    def solved_moves(self) -> int:
        """How many moves of the solution the current configuration shows (module docstring): the largest ``k``
        such that the configuration is the state after ``k`` moves, or that state with the ring of move ``k + 1``
        lifted off, dropped, or on top of another peg; 0 off the solution path."""
        pegs, off = self.configuration()
        for k in range(len(self.states) - 1, -1, -1):
            state = self.states[k]
            if pegs == state and not off:
                return k
            if k == len(self.moves):
                continue
            ring = self.moves[k][0]
            without = tuple(tuple(i for i in p if i != ring) for p in pegs)
            expected = tuple(tuple(i for i in p if i != ring) for p in state)
            on_top = ring in off or any(p and p[-1] == ring for p in pegs)
            if without == expected and on_top and off <= {ring}:
                return k
        return 0

    def progress_now(self) -> tuple[float, int]:
        """Progress ``k / 7`` of the current state and the first unmet move ``k`` (:meth:`solved_moves`)."""
        k = self.solved_moves()
        return k / len(self.moves), k

    def is_match(self, pose: Pose, target: Pose, symmetry: float) -> bool:
        """A ring is at a target when it sits on that target's peg (:meth:`_peg_of`); yaw is ignored."""
        peg = self._peg_of(pose)
        return peg is not None and float(np.linalg.norm(self.pegs[peg][:2] - np.asarray(target[0][:2]))) < 1e-6

    # ------------------------------------------------------------------ oracle
    def oracle(self, obs: Observation, rng: np.random.Generator) -> Action:
        """Ravens' oracle on the current move, touching each ring only on the part of its top face where the
        suction tool clears the peg (:data:`PICK_MIN_RADIUS` from the ring's centre, :data:`PICK_EDGE_MARGIN`
        inside its edge).

        Raises:
            TaskError: if every move is done or the ring to move is not visible.
        """
        seg = obs.segmentation.copy()
        for i, body in enumerate(self.rings):
            pixels = np.argwhere(seg == body)
            if len(pixels) == 0:
                continue
            xy = pixel_to_xyz(pixels, None, self.scene.bounds, self.scene.pixel_size)[:, :2]
            r = np.linalg.norm(xy - self.scene.pose(body)[0][:2], axis=1)
            unsafe = (r < PICK_MIN_RADIUS) | (r > RING_OUTER_RADII[i] - PICK_EDGE_MARGIN)
            seg[pixels[unsafe, 0], pixels[unsafe, 1]] = -1
        return super().oracle(replace(obs, segmentation=seg), rng)


def _factory(variant: str):
    name = f"{FAMILY}-{variant}{'-colors' if variant != 'full' else ''}"
    return name, (lambda: TowersOfHanoiSeq(name=name, variant=variant))


#: Registered variants (``vlarm.tasks.make_task``): name -> factory.
VARIANTS = dict(_factory(v) for v in ("seen", "unseen", "full"))
