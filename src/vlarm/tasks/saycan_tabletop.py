"""SayCan's tabletop (Ahn et al. 2022, arXiv 2204.01691, the open-source tabletop variant; REFERENCE.md Sec. 3).

Scene: four blocks and four bowls of distinct colours (bowls fixed, as targets) plus nine named places: the four
corners, the middle and the four sides of the workspace. A *skill* is "pick the X and place it on the Y" for a block
X and any other object or named place Y; the planner (:mod:`vlarm.planning`) strings skills together.

Two registered tasks share the scene:

* ``saycan-skills``: one random skill per episode, as its instruction, with an oracle and a reward; its oracle
  demonstrations train the low-level policy that executes the planner's skills (``vlarm collect`` /
  ``vlarm train``).
* ``saycan-tabletop``: a scene without goals for the planner (long-horizon goals are judged by
  :mod:`vlarm.planning.instructions`, over the final state).

A scene can be fixed by a :class:`SceneSpec` (colours, and where blocks start), passed as ``goal={"spec": spec}``
to :meth:`Task.reset`. Directions are the robot's: "top" is far from the robot (+x), "left" is +y.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from vlarm.sim import Scene, pixel_to_xyz
from vlarm.sim.assets import BLOCK_SIZE, BOWL_HEIGHT, BOWL_RADIUS
from vlarm.sim.heightmap import WORKSPACE_BOUNDS
from vlarm.sim.transforms import Pose, yaw_to_quat
from vlarm.tasks.attributes import COLORS
from vlarm.tasks.base import Action, Goal, Task, TaskError

FAMILY = "saycan-tabletop"
EXAMPLE = "pick the red block and place it on the green bowl"

#: Colours blocks and bowls are drawn from (the first four are SayCan's default scene).
SAYCAN_COLORS: tuple[str, ...] = ("blue", "red", "green", "yellow", "orange", "purple")
N_BLOCKS = 4
N_BOWLS = 4
#: How far named places sit inside the workspace edge, metres.
PLACE_MARGIN = 0.07
#: Radius kept free of objects around each named place when a scene is sampled, metres.
PLACE_RADIUS = 0.05
BLOCK_RADIUS = BLOCK_SIZE * 0.75


def _places(bounds: np.ndarray = WORKSPACE_BOUNDS) -> dict[str, tuple[float, float]]:
    (x0, x1), (y0, y1) = bounds[0], bounds[1]
    top, bottom, mid_x = x1 - PLACE_MARGIN, x0 + PLACE_MARGIN, (x0 + x1) / 2
    left, right, mid_y = y1 - PLACE_MARGIN, y0 + PLACE_MARGIN, (y0 + y1) / 2
    return {"top left corner": (top, left), "top right corner": (top, right),
            "bottom left corner": (bottom, left), "bottom right corner": (bottom, right),
            "middle": (mid_x, mid_y), "top side": (top, mid_y), "bottom side": (bottom, mid_y),
            "left side": (mid_x, left), "right side": (mid_x, right)}


#: Named place -> ``(x, y)`` in metres (robot frame; "top" = +x, far from the robot; "left" = +y).
PLACES: dict[str, tuple[float, float]] = _places()

DONE = "done()"


def object_name(color: str, kind: str) -> str:
    """``"red block"`` for ``("red", "block")``: how skills and the planner name an object."""
    return f"{color} {kind}"


def skill_text(pick: str, place: str) -> str:
    """The language of a skill (SayCan's tabletop): ``"pick the red block and place it on the green bowl"``."""
    return f"pick the {pick} and place it on the {place}"


_SKILL_RE = re.compile(r"^\s*(?:please\s+)?pick(?: up)? the (?P<pick>.+?) and (?:place|put) it "
                       r"(?:on|in|into|onto|at|to) the (?P<place>.+?)[\s.!]*$")


def parse_skill(text: str) -> tuple[str, str]:
    """Inverse of :func:`skill_text`: ``(pick, place)`` names (lower case).

    Raises:
        ValueError: when ``text`` is not a skill; the message shows the form.
    """
    match = _SKILL_RE.match(text.lower())
    if match is None:
        raise ValueError(f"cannot ground the instruction {text[:100]!r} as a skill; the form is "
                         f"{skill_text('<colour> block', '<object or place>')!r} (places: {', '.join(PLACES)})")
    return match["pick"], match["place"]


@dataclass(frozen=True)
class SceneSpec:
    """A SayCan scene fixed up to object positions.

    Attributes:
        blocks: block colours (distinct), e.g. ``("red", "blue")``.
        bowls: bowl colours (distinct).
        start: block name -> the bowl, block or named place it starts on (e.g. ``{"red block": "top left corner"}``);
            other blocks start at random free positions. A block may start on a block listed before it.
    """

    blocks: tuple[str, ...] = ("blue", "red", "green", "yellow")
    bowls: tuple[str, ...] = ("blue", "red", "green", "yellow")
    start: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for kind, colors in (("block", self.blocks), ("bowl", self.bowls)):
            unknown = [c for c in colors if c not in COLORS]
            if unknown:
                raise ValueError(f"unknown {kind} colour(s) {unknown}; known colours: {', '.join(COLORS)}")
            if len(set(colors)) != len(colors):
                raise ValueError(f"{kind} colours must be distinct, got {list(colors)}")
        names = self.names()
        for block, target in self.start.items():
            if block not in names or not block.endswith(" block"):
                raise ValueError(f"start: {block!r} is not a block of this scene ({', '.join(names)})")
            if target not in names and target not in PLACES:
                raise ValueError(f"start: {block!r} starts on {target!r}, which is neither an object of this scene "
                                 f"nor a place ({', '.join(PLACES)})")

    def names(self) -> list[str]:
        """Object names, blocks first: ``["red block", ..., "blue bowl", ...]``."""
        return [object_name(c, "block") for c in self.blocks] + [object_name(c, "bowl") for c in self.bowls]


@dataclass
class SayCanTabletop(Task):
    """SayCan's tabletop scene; ``skills=True`` makes each episode one random skill (for demonstrations).

    Attributes:
        skills: one-skill episodes with a goal and an oracle (``saycan-skills``), or a goal-free scene.
        spec: the :class:`SceneSpec` of the last reset.
        bodies: object name -> body id of the last reset (simulator ground truth: for oracles and judges only,
            never for the planner's perception).
    """

    skills: bool = False
    spec: SceneSpec | None = None
    bodies: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.lang_template = skill_text("{pick}", "{place}") if self.skills else "a SayCan tabletop scene"
        self.pos_eps = 0.03
        self.max_steps = 2 if self.skills else 12

    # ------------------------------------------------------------------ language
    def parse_instruction(self, instruction: str) -> dict:
        """Ground a skill ``"pick the <colour> block and place it on the <object or place>"`` (``saycan-skills``).

        Returns:
            ``{"pick": name, "place": name}``; the scene is built to hold both.

        Raises:
            ValueError: not a skill, an unknown colour or place, a bowl to pick, or a block placed on itself.
        """
        if not self.skills:
            raise ValueError("saycan-tabletop takes long-horizon instructions through the planner (`vlarm run "
                             "--planner saycan`); saycan-skills grounds single skills")
        pick, place = parse_skill(instruction)
        _check_name(pick, kinds=("block",))
        if place not in PLACES:
            _check_name(place, kinds=("block", "bowl"))
        if place == pick:
            raise ValueError(f"cannot place the {pick} on itself")
        return {"pick": pick, "place": place}

    # ------------------------------------------------------------------ scene
    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        spec = goal.get("spec") or self._sample_spec(rng, goal)
        self.spec = spec
        self.bodies = {}
        placed: list = [(np.asarray(xy), PLACE_RADIUS) for xy in PLACES.values()]
        for color in spec.bowls:
            pose = self._free_pose(rng, BOWL_RADIUS, placed)
            self.bodies[object_name(color, "bowl")] = scene.add_bowl(pose, COLORS[color], color, fixed=True)
        for color in spec.blocks:
            name = object_name(color, "block")
            start = spec.start.get(name)
            if start is None:
                pose = self._free_pose(rng, BLOCK_RADIUS, placed)
            else:
                xyz = self.target_position(start, scene)
                pose = (np.array([xyz[0], xyz[1], xyz[2]]), yaw_to_quat(rng.uniform(0, 2 * np.pi)))
            self.bodies[name] = scene.add_block(pose, COLORS[color], color)
            if start is not None:
                scene.settle()
        if not self.skills:
            return self.lang_template
        pick, place = goal.get("pick"), goal.get("place")
        if pick is None:
            blocks = [object_name(c, "block") for c in spec.blocks]
            pick = str(rng.choice(blocks))
            targets = [n for n in self.bodies if n != pick] + list(PLACES)
            place = str(rng.choice(targets))
        scene.settle()
        body = self.bodies[pick]
        target = (self.target_position(place, scene), np.array([0.0, 0.0, 0.0, 1.0]))
        self.goals.append(Goal(objects=[body], symmetries=[0.0], matches=np.ones((1, 1), dtype=bool),
                               # rotations=True: the oracle turns the tool so that the block keeps the offset it was
                               # picked at (without it, a yawed block lands up to ~3 cm off target)
                               targets=[target], replace=True, rotations=True, metric="pose", max_reward=1.0,
                               instruction=""))
        self.goal_attributes = {}
        return skill_text(pick, place)

    def _sample_spec(self, rng: np.random.Generator, goal: dict) -> SceneSpec:
        """Random colours; a skill's named pick and place objects (``goal``) are among them."""
        need = {"block": [], "bowl": []}
        for role in ("pick", "place"):
            name = goal.get(role)
            if name and name not in PLACES:
                color, kind = name.rsplit(" ", 1)
                need[kind].append(color)
        out = {}
        for kind, n in (("block", N_BLOCKS), ("bowl", N_BOWLS)):
            rest = [c for c in SAYCAN_COLORS if c not in need[kind]]
            out[kind] = tuple(need[kind]) + tuple(str(c) for c in rng.choice(rest, n - len(need[kind]), replace=False))
            out[kind] = tuple(out[kind][i] for i in rng.permutation(n))
        return SceneSpec(blocks=out["block"], bowls=out["bowl"])

    def _free_pose(self, rng: np.random.Generator, radius: float, placed: list) -> Pose:
        pose = self.sample_pose(rng, radius, placed, attempts=500)
        if pose is None:
            raise TaskError("no free table position left for an object (too many objects for the workspace)")
        return pose

    # ------------------------------------------------------------------ ground truth (oracles and judges)
    def target_position(self, name: str, scene: Scene | None = None) -> np.ndarray:
        """Where an object placed on ``name`` rests its bottom: xyz metres (ground truth).

        A named place is on the table; a bowl is its floor at its centre; a block is its top face.

        Raises:
            KeyError: for a name that is neither a place nor an object of the scene.
        """
        scene = scene or self.scene
        if name in PLACES:
            return np.array([*PLACES[name], 0.0])
        if name not in self.bodies:
            raise KeyError(f"{name!r} is not in this scene; objects: {', '.join(self.bodies)}; places: "
                           f"{', '.join(PLACES)}")
        pos = scene.pose(self.bodies[name])[0]
        if name.endswith(" bowl"):
            return np.array([pos[0], pos[1], 0.0])
        return np.array([pos[0], pos[1], pos[2] + BLOCK_SIZE / 2])

    def object_positions(self) -> dict[str, np.ndarray]:
        """Object name -> centre xyz in metres now (ground truth, for goal checkers)."""
        return {name: self.scene.pose(body)[0].copy() for name, body in self.bodies.items()}

    def skill_oracle(self, pick: str, place: str, obs, rng: np.random.Generator) -> Action:
        """Scripted pick-and-place for one skill (the oracle executor of plan evaluation).

        Picks at a random visible pixel of the block's top (segmentation), places so that the block's centre ends
        over the target.

        Raises:
            TaskError: the pick is not a block of the scene, is not visible, or the target is unknown.
        """
        if pick not in self.bodies or not pick.endswith(" block"):
            raise TaskError(f"cannot pick {pick!r}: blocks here are "
                            f"{', '.join(n for n in self.bodies if n.endswith(' block'))}")
        body = self.bodies[pick]
        mask = obs.segmentation == body
        if not mask.any():
            raise TaskError(f"the {pick} is not visible from above")
        pixels = np.argwhere(mask)
        pick_pos = pixel_to_xyz(pixels[rng.integers(len(pixels))], obs.heightmap, self.scene.bounds,
                                self.scene.pixel_size)
        try:
            target = self.target_position(place)
        except KeyError as err:
            raise TaskError(str(err)) from None
        centre = self.scene.pose(body)[0]
        offset = np.asarray(pick_pos) - centre
        place_pos = np.array([target[0] + offset[0], target[1] + offset[1], target[2] + BLOCK_SIZE / 2 + offset[2]])
        identity = np.array([0.0, 0.0, 0.0, 1.0])
        return Action((np.asarray(pick_pos), identity), (place_pos, identity))


def _check_name(name: str, kinds: tuple[str, ...]) -> None:
    parts = name.rsplit(" ", 1)
    if len(parts) != 2 or parts[1] not in kinds or parts[0] not in COLORS:
        raise ValueError(f"unknown object {name!r}: expected '<colour> {'|'.join(kinds)}' with a colour among "
                         f"{', '.join(COLORS)}" + ("" if "bowl" in kinds else " (bowls are fixed: only blocks are "
                                                                             "picked)"))


#: Registered tasks (outside the CLIPort families: ``vlarm.tasks`` registers them apart, never routed).
VARIANTS = {
    "saycan-skills": lambda: SayCanTabletop(name="saycan-skills", skills=True, variant="full"),
    "saycan-tabletop": lambda: SayCanTabletop(name="saycan-tabletop", skills=False, variant="full"),
}

__all__ = ["BOWL_HEIGHT", "DONE", "FAMILY", "PLACES", "SAYCAN_COLORS", "SayCanTabletop", "SceneSpec", "object_name",
           "parse_skill", "skill_text"]
