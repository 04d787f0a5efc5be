"""separating-piles (CLIPort, Shridhar et al. CoRL 2021, Appendix A; Ravens ``sweeping_piles``, Zeng et al. 2020).

Scene: a pile of :data:`N_BLOCKS` 1 cm cubes of one colour scattered over a 20 x 20 cm patch in the middle of the
workspace, and two flat square zones of two other colours (15 cm, visual markers without collision, random yaw,
inside the workspace; centres more than 22 cm apart by :meth:`Task.sample_pose`'s footprint test, where CLIPort
asks for 20 cm). Goal: every block inside the zone of the named colour ('zone' metric: the share of the blocks'
points inside the zone, partial credit). The action is a push (:func:`vlarm.sim.push`: a flat blade swept
along the table from the pick pose to the place pose), as Ravens' spatula; 20 steps (CLIPort's ``max_steps``).

Oracle (after Ravens' sweeping oracle, which pushes the block farthest from the zone towards the zone centre):
take the block left outside the zone that is farthest from the zone centre, start the blade just behind it (moved
back until the blade comes down on free table) and sweep through it towards the zone centre, stopping short of
the centre so the heap the blade gathers ends up in the middle of the zone. Repeated pushes gather the
stragglers; each push earns partial credit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlarm.sim import PrimitiveResult, Scene, push
from vlarm.sim.assets import box_points, create_box, create_compound
from vlarm.sim.primitives import BLADE_SIZE
from vlarm.sim.scene import Observation
from vlarm.sim.transforms import Pose, yaw_to_quat
from vlarm.tasks.attributes import COLORS, colors_for
from vlarm.tasks.base import Action, Goal, Task, TaskError
from vlarm.tasks.language import BLOCK_WORDS, COLOR_WORDS, Grammar, Slot, phrases
from vlarm.tasks.language import COLOR_HINT as _COLOR_HINT

N_BLOCKS = 50                    # Ravens: 50 small blocks
PILE_BLOCK_SIZE = 0.01           # edge of a pile block, metres (Ravens ``block/small.urdf``)
PILE_BLOCK_MASS = 0.005          # kilograms
PILE_XY = ((0.40, 0.60), (-0.10, 0.10))   # the patch the pile is scattered over, metres (Ravens)
PILE_SPACING = 0.015             # minimum distance between two block centres when the pile is scattered, metres
ZONE_SIZE = (0.15, 0.15, 0.0)    # zone footprint, metres (CLIPort separating-piles)
ZONE_THICKNESS = 0.001           # the visual marker's thickness, metres
POINT_SPACING = PILE_BLOCK_SIZE / 2   # 3 x 3 x 3 points per block for the zone metric

# Oracle geometry (metres).
PUSH_BEHIND = 0.02               # blade centre this far behind the block centre at the start of a push
PUSH_STOP = 0.03                 # the blade stops this far short of the zone centre
FREE_MARGIN = 0.008              # no block centre this close to the blade's footprint where it comes down
MAX_BACKOFF = 0.06               # how far the start may move back to find free table
WORKSPACE_MARGIN = 0.02          # push starts are kept this far inside the workspace

FAMILY = "separating-piles"
EXAMPLE = "push the pile of red blocks into the green square"

VERBS: tuple[str, ...] = ("push", "sweep", "move", "slide", "put")
PREPOSITIONS: tuple[str, ...] = ("into", "in", "inside", "onto", "on", "to", "towards", "toward")
#: [please] VERB [the] [pile(s) of] COLOUR block(s) PREPOSITION [the] COLOUR square [please].
GRAMMAR = Grammar(
    form="'push the pile of <colour> blocks into the <colour> square'",
    slots=(
        Slot("action", phrases(*VERBS, meaning=""), f"known actions: {', '.join(VERBS)}", structural=True),
        Slot("pile", phrases("pile", "piles", meaning=""), "this task knows: pile", determiners=True, optional=True),
        Slot("block colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("object", BLOCK_WORDS, "this task knows: block (or cube)"),
        Slot("preposition", phrases(*PREPOSITIONS, meaning=""), f"known prepositions: {', '.join(PREPOSITIONS)}",
             structural=True),
        Slot("square colour", COLOR_WORDS, _COLOR_HINT, determiners=True),
        Slot("target", {"square": "square", "squares": "square", "zone": "square", "zones": "square"},
             "this task knows: square, zone"),
    ),
    report_order=("object", "target", "block colour", "square colour"),
    distinct=(("block colour", "square colour"),),
)


def create_zone(scene: Scene, pose: Pose, color: str, size=ZONE_SIZE) -> int:
    """Add a flat square zone marker (visual only: blocks slide over it) and record it as a fixed object.

    Args:
        scene: the scene.
        pose: zone centre on the table (metres) and yaw quaternion xyzw.
        color: a colour name of :data:`vlarm.tasks.attributes.COLORS`.
        size: ``(x, y, _)`` footprint in metres.

    Returns:
        The body id.
    """
    parts = [((0.0, 0.0, ZONE_THICKNESS / 2), (size[0], size[1], ZONE_THICKNESS), 0.0, COLORS[color])]
    body = create_compound(scene.client, pose[0], pose[1], parts, mass=0.0, collision=False)
    return scene.add_object(body, "zone", color, (size[0], size[1], ZONE_THICKNESS), fixed=True)


@dataclass
class SeparatingPiles(Task):
    """CLIPort's separating-piles; :attr:`variant` ``"seen"``, ``"unseen"`` or ``"full"`` picks the colours."""

    pose_names: tuple[str, str] = ("push from", "to")

    def __post_init__(self):
        self.lang_template = "push the pile of {block_color} blocks into the {square_color} square"
        self.max_steps = 20

    def parse_instruction(self, instruction: str) -> dict:
        """Ground ``"push the pile of <colour> blocks into the <colour> square"`` to ``{"pick": c1, "place": c2}``.

        Accepted variants: an optional 'please'; the verbs push/sweep/move/slide/put; 'the pile of' optional;
        'block(s)'; 'square(s)' or 'zone(s)'; the prepositions into/in/inside/onto/on/to/towards/toward; any
        case, extra whitespace and trailing punctuation.

        Raises:
            ValueError: ``"cannot ground the instruction. Understood: ... Not understood: ..."`` naming each word
                that was not understood.
        """
        found = GRAMMAR.parse(instruction)
        return {"pick": found["block colour"], "place": found["square colour"]}

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        palette = [str(c) for c in colors_for(split, self.variant)]
        block_color = goal.get("pick") or str(rng.choice([c for c in palette if c != goal.get("place")]))
        target_color = goal.get("place") or str(rng.choice([c for c in palette if c != block_color]))
        other_color = str(rng.choice([c for c in palette if c not in (block_color, target_color)]))
        placed: list = []
        zone_radius = float(np.hypot(ZONE_SIZE[0], ZONE_SIZE[1])) / 2
        zones = []
        for _ in range(2):
            pose = self.sample_pose(rng, zone_radius, placed)
            if pose is None:
                raise TaskError(f"no room for two {ZONE_SIZE[0]:.2f} m zones apart from each other in the "
                                f"workspace {scene.bounds[:2].tolist()}")
            zones.append(pose)
        target_index = int(rng.integers(2))
        for i, pose in enumerate(zones):
            create_zone(scene, pose, target_color if i == target_index else other_color)
        target = zones[target_index]
        blocks = self._scatter_pile(scene, rng, block_color)
        self.goals.append(Goal(objects=blocks, symmetries=[0.0] * len(blocks),
                               matches=np.ones((len(blocks), 1), dtype=bool), targets=[target], replace=True,
                               rotations=False, metric="zone", max_reward=1.0, zones=[(target, ZONE_SIZE)]))
        self.goal_attributes = {"pick": ("color", block_color), "place": ("color", target_color)}
        return self.lang_template.format(block_color=block_color, square_color=target_color)

    def _scatter_pile(self, scene: Scene, rng: np.random.Generator, color: str) -> list[int]:
        """Scatter up to :data:`N_BLOCKS` blocks over :data:`PILE_XY`, none closer than :data:`PILE_SPACING`.

        Sampling is bounded (20 tries per block); a patch too crowded for all of them gets fewer blocks.
        """
        size = (PILE_BLOCK_SIZE,) * 3
        points = box_points(size, POINT_SPACING)
        centres: list[np.ndarray] = []
        blocks = []
        for _ in range(20 * N_BLOCKS):
            if len(blocks) == N_BLOCKS:
                break
            xy = np.array([rng.uniform(*PILE_XY[0]), rng.uniform(*PILE_XY[1])])
            if centres and np.min(np.linalg.norm(np.asarray(centres) - xy, axis=1)) < PILE_SPACING:
                continue
            centres.append(xy)
            body = create_box(scene.client, (xy[0], xy[1], PILE_BLOCK_SIZE / 2), yaw_to_quat(rng.uniform(0, 2 * np.pi)),
                              size, COLORS[color], mass=PILE_BLOCK_MASS, friction=0.5)
            scene.add_object(body, "block", color, size)
            self.object_points[body] = points
            blocks.append(body)
        return blocks

    # ------------------------------------------------------------------ acting
    def execute(self, scene: Scene, pick_pose: Pose, place_pose: Pose) -> PrimitiveResult:
        """Push: the blade's centre sweeps from ``pick_pose`` to ``place_pose`` (see :func:`vlarm.sim.push`)."""
        return push(scene, pick_pose, place_pose)

    def oracle(self, obs: Observation, rng: np.random.Generator) -> Action:
        """Push the block farthest from the zone centre, of those not yet inside, towards the centre (module doc).

        Args:
            obs: unused (the oracle reads the true block poses, as Ravens' reads true masks).
            rng: unused (the push is determined by the state).

        Returns:
            An :class:`Action` whose poses are the push start and end (identity rotations).

        Raises:
            TaskError: when every block is already inside the zone.
        """
        goal = self.goals[0]
        zone_pose = goal.zones[0][0]
        centre = np.asarray(zone_pose[0][:2], dtype=np.float64)
        outside = [b for i, b in enumerate(goal.objects) if not self.object_done(goal, i)]
        if not outside:
            raise TaskError("every block is already inside the zone")
        xy = np.array([self.scene.pose(b)[0][:2] for b in goal.objects])
        out_xy = np.array([self.scene.pose(b)[0][:2] for b in outside])
        far = out_xy[int(np.argmax(np.linalg.norm(out_xy - centre, axis=1)))]
        direction = (centre - far) / max(float(np.linalg.norm(centre - far)), 1e-9)
        start = self._free_start(far - direction * PUSH_BEHIND, direction, xy)
        end = centre - direction * PUSH_STOP
        identity = np.array([0.0, 0.0, 0.0, 1.0])
        return Action((np.array([start[0], start[1], 0.0]), identity), (np.array([end[0], end[1], 0.0]), identity))

    def _free_start(self, start: np.ndarray, direction: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Move ``start`` back against ``direction`` (1 cm at a time, at most :data:`MAX_BACKOFF`) until no block
        lies under the blade's footprint there, keeping it inside the workspace."""
        across = np.array([-direction[1], direction[0]])
        half_thick, half_wide = BLADE_SIZE[0] / 2 + FREE_MARGIN, BLADE_SIZE[1] / 2 + FREE_MARGIN
        b = self.scene.bounds
        low, high = b[:2, 0] + WORKSPACE_MARGIN, b[:2, 1] - WORKSPACE_MARGIN
        candidate = start
        for back in np.arange(0.0, MAX_BACKOFF + 1e-9, 0.01):
            candidate = np.clip(start - direction * back, low, high)
            rel = xy - candidate
            along, side = rel @ direction, rel @ across
            if not np.any((np.abs(along) < half_thick) & (np.abs(side) < half_wide)):
                return candidate
        return candidate


#: Registered variants (``vlarm.tasks.make_task``): name -> factory.
VARIANTS = {f"separating-piles-{v}{'-colors' if v != 'full' else ''}": (lambda v=v: SeparatingPiles(
    name=f"separating-piles-{v}{'-colors' if v != 'full' else ''}", variant=v)) for v in ("seen", "unseen", "full")}
