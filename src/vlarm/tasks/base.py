"""Task base class: goals, language, reward and the oracle (Ravens ``Task``; CLIPort Sec. 4.1).

A goal lists objects, the targets each may match, whether several objects may share a target (``replace``),
whether yaw matters, the metric and the reward it is worth. Goals are sequential, as in Ravens: the oracle works
on the first goal that is not met.

Progress is judged on the *current* state of every goal, never banked: it is the sum over goals of each goal's
partial credit now (``max_reward`` times the share of its objects on a matching target). A step's reward is the
change in progress since the previous step, so step rewards always sum to the final progress, and a step that
undoes earlier work (a toppled stack, a block pulled out of its bowl) earns a *negative* reward. (Ravens popped a
goal once met and kept its reward forever, so a stack knocked over later still counted as built.) An episode is
done when every goal is met in the current state; success is a final progress above :data:`SUCCESS_THRESHOLD`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vlarm.sim import PrimitiveResult, Scene, pick_place, pixel_to_xyz
from vlarm.sim.scene import Observation
from vlarm.sim.transforms import Pose, invert, multiply, quat_to_yaw, yaw_to_quat

#: An episode counts as a success when its total reward exceeds this (CLIPort/Ravens: demos kept, ``done``).
SUCCESS_THRESHOLD = 0.99
#: Goal metrics (Ravens): a pose within tolerance of a target, or the share of an object's points inside a zone.
METRICS: tuple[str, ...] = ("pose", "zone")


@dataclass
class Goal:
    """One goal step.

    Attributes:
        objects: body ids to move.
        symmetries: per object, the yaw symmetry in radians (0: yaw ignored).
        matches: ``(n_objects, n_targets)`` bool, which targets each object may go to.
        targets: target poses.
        replace: if True several objects may share a target.
        rotations: if True the place pose carries the target yaw.
        metric: ``"pose"`` (position within ``pos_eps`` and yaw within ``rot_eps``) or ``"zone"`` (the share of
            the objects' points, :attr:`Task.object_points`, inside any of ``zones``; Ravens ``Task.reward``).
        max_reward: reward for completing this goal.
        zones: for the ``"zone"`` metric, ``(zone pose, (x, y, z) size in metres)`` of each zone; ``targets`` then
            hold the oracle's place poses inside them.
        instruction: this goal's own instruction in sequential tasks (CLIPort's ``-seq`` tasks give one per step);
            ``""`` when the task's one instruction covers every goal.
    """

    objects: list[int]
    symmetries: list[float]
    matches: np.ndarray
    targets: list[Pose]
    replace: bool = False
    rotations: bool = True
    metric: str = "pose"
    max_reward: float = 1.0
    zones: list[tuple[Pose, tuple[float, float, float]]] = field(default_factory=list)
    instruction: str = ""

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; valid metrics: {', '.join(METRICS)}")
        if self.metric == "zone" and not self.zones:
            raise ValueError("a 'zone' goal needs at least one zone (pose, size)")


@dataclass
class Action:
    """A pick-and-place action: poses with positions in metres and quaternions xyzw."""

    pick_pose: Pose
    place_pose: Pose


class TaskError(RuntimeError):
    """A task could not be reset or stepped (e.g. the oracle sees no object to pick)."""


@dataclass
class Task:
    """Base class for language-conditioned tabletop tasks. Subclasses implement :meth:`build_scene`.

    Attributes:
        name: registry name, e.g. ``"put-block-in-bowl-seen-colors"``.
        lang_template: the instruction template.
        pos_eps: position tolerance of the pose metric, metres.
        rot_eps: yaw tolerance of the pose metric, radians (15 degrees).
    """

    name: str = "task"
    lang_template: str = ""
    pos_eps: float = 0.01
    rot_eps: float = np.deg2rad(15)
    goals: list[Goal] = field(default_factory=list)
    lang_goal: str = ""
    max_steps: int = 10
    progress: float = 0.0  # progress of the state at the last reward() call
    _rewards: float = 0.0
    scene: Scene | None = None
    split: str = "train"
    #: attribute variant (``vlarm.tasks.attributes.VARIANTS``): ``"seen"``, ``"unseen"`` or ``"full"``.
    variant: str = "seen"
    #: the family this task variant belongs to, e.g. ``"put-block-in-bowl"`` (instruction routing groups by it).
    family: str = ""
    #: what the action's two poses mean for this task's :meth:`execute`, as reports print them: ``("pick at",
    #: "place at")`` for suction pick-and-place, ``("push from", "to")`` for pushing.
    pose_names: tuple[str, str] = ("pick at", "place at")
    #: role -> (attribute kind, value) of the current goal, e.g. {"pick": ("color", "red")}; set by build_scene.
    goal_attributes: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: body id -> ``(N, 3)`` float32 points in the body frame (metres) that the ``"zone"`` metric counts.
    object_points: dict[int, np.ndarray] = field(default_factory=dict)

    # ------------------------------------------------------------------ episode
    def reset(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict | None = None) -> str:
        """Rebuild ``scene`` for a new episode and return the language goal.

        Args:
            scene: the simulator scene (it is reset here).
            rng: the episode's random generator; the same seed gives the same scene.
            split: ``"train"``, ``"val"`` or ``"test"`` (selects attribute splits).
            goal: optional attribute overrides parsed from an instruction (see :meth:`parse_instruction`).

        Returns:
            The instruction string.
        """
        scene.reset()
        self.scene, self.split = scene, split
        self.goals, self.progress, self._rewards, self.goal_attributes = [], 0.0, 0.0, {}
        self.object_points = {}
        self.lang_goal = self.build_scene(scene, rng, split, goal or {})
        scene.settle()
        return self.lang_goal

    def build_scene(self, scene: Scene, rng: np.random.Generator, split: str, goal: dict) -> str:
        """Place objects, append :class:`Goal` s and return the instruction (subclasses)."""
        raise NotImplementedError

    def parse_instruction(self, instruction: str) -> dict:
        """Map a free-form instruction to attribute overrides for :meth:`reset` (subclasses).

        Raises:
            ValueError: if the instruction cannot be grounded; the message says what was understood and what
                was not.
        """
        raise ValueError(f"task {self.name} cannot ground free-form instructions")

    def attribute_variant(self, kind: str) -> str:
        """The split variant the values of attribute ``kind`` follow in this task (default: :attr:`variant`).

        Novelty (``vlarm.tasks.attributes.is_novel``) is judged against the training values of this variant. A
        task whose ``seen`` variant draws one kind from the union of values (the named objects) returns ``"full"``.
        """
        return self.variant

    # ------------------------------------------------------------------ reward
    def is_match(self, pose: Pose, target: Pose, symmetry: float) -> bool:
        """Pose metric: xy distance < ``pos_eps`` and yaw error (modulo ``symmetry``) < ``rot_eps``."""
        dist = float(np.linalg.norm(np.asarray(pose[0][:2]) - np.asarray(target[0][:2])))
        diff = 0.0
        if symmetry > 0:
            diff = abs(quat_to_yaw(pose[1]) - quat_to_yaw(target[1])) % symmetry
            diff = min(diff, symmetry - diff)
        return dist < self.pos_eps and diff < self.rot_eps

    def zone_fraction(self, body: int, zones: list[tuple[Pose, tuple[float, float, float]]]) -> float:
        """Share in [0, 1] of ``body``'s :attr:`object_points` inside any of ``zones`` (footprint in xy, any z).

        Raises:
            KeyError: when the task recorded no points for ``body``.
        """
        if body not in self.object_points:
            raise KeyError(f"no object points recorded for body {body}; a task with 'zone' goals fills "
                           "Task.object_points in build_scene")
        pts = self.object_points[body]
        obj_pose = self.scene.pose(body)
        inside = np.zeros(len(pts), dtype=bool)
        for zone_pose, size in zones:
            rel = multiply(invert(zone_pose), obj_pose)
            rot = _quat_matrix(rel[1])
            local = pts @ rot.T + rel[0]
            inside |= (np.abs(local[:, 0]) < size[0] / 2) & (np.abs(local[:, 1]) < size[1] / 2)
        return float(inside.mean())

    def _goal_reward(self, goal: Goal) -> float:
        reward = 0.0
        if goal.metric == "zone":
            fractions = [self.zone_fraction(b, goal.zones) for b in goal.objects]
            return goal.max_reward * float(np.mean(fractions)) if fractions else 0.0
        for i, body in enumerate(goal.objects):
            pose = self.scene.pose(body)
            for j in np.flatnonzero(goal.matches[i]):
                if self.is_match(pose, goal.targets[j], goal.symmetries[i]):
                    reward += goal.max_reward / len(goal.objects)
                    break
        return reward

    def progress_now(self) -> tuple[float, int]:
        """Progress in [0, 1] of the current scene state, and the index of the first goal not met.

        Progress is the sum of every goal's partial credit in the current state; a goal is met when its credit
        is within 0.01 of its ``max_reward``. Nothing is remembered from earlier steps.

        Returns:
            ``(progress, first_unmet)`` where ``first_unmet == len(self.goals)`` when every goal is met.
        """
        total, first_unmet = 0.0, len(self.goals)
        for i, goal in enumerate(self.goals):
            credit = self._goal_reward(goal)
            total += credit
            if first_unmet == len(self.goals) and abs(goal.max_reward - credit) >= 0.01:
                first_unmet = i
        return total, first_unmet

    def reward(self) -> tuple[float, dict]:
        """Reward earned since the last call (final-state judgement, see the module docstring), and info.

        Returns:
            ``(step_reward, info)``; step rewards over an episode sum to the final progress in [0, 1] and are
            negative when a step undoes progress. ``info`` has ``total_reward`` (progress of the current state)
            and ``goals_left`` (goals from the first unmet one on, in order).
        """
        total, first_unmet = self.progress_now()
        self.progress = total
        delta, self._rewards = total - self._rewards, total
        return delta, {"total_reward": total, "goals_left": len(self.goals) - first_unmet}

    def instruction_now(self) -> str:
        """The instruction for the current state: the first unmet goal's own :attr:`Goal.instruction` when it has
        one (sequential tasks: the policy is told one step at a time, as in CLIPort), else :attr:`lang_goal`."""
        _, first_unmet = self.progress_now() if self.scene is not None else (0.0, len(self.goals))
        if first_unmet < len(self.goals) and self.goals[first_unmet].instruction:
            return self.goals[first_unmet].instruction
        return self.lang_goal

    def done(self) -> bool:
        """True when every goal is met in the current state (or its progress exceeds 0.99)."""
        total, first_unmet = self.progress_now()
        return first_unmet == len(self.goals) or total > SUCCESS_THRESHOLD

    def execute(self, scene: Scene, pick_pose: Pose, place_pose: Pose) -> PrimitiveResult:
        """Run the task's motion primitive for one action (default: suction pick-and-place).

        Tasks with another primitive (e.g. pushing piles) override this; the two poses then mean what that
        primitive documents (e.g. push start and end).
        """
        return pick_place(scene, pick_pose, place_pose)

    def object_done(self, goal: Goal, i: int) -> bool:
        """Whether object ``i`` of ``goal`` already satisfies the goal on its own (the oracle skips it)."""
        if goal.metric == "zone":
            return self.zone_fraction(goal.objects[i], goal.zones) > SUCCESS_THRESHOLD
        pose = self.scene.pose(goal.objects[i])
        return any(self.is_match(pose, goal.targets[j], goal.symmetries[i]) for j in np.flatnonzero(goal.matches[i]))

    def solve(self, scene: Scene, rng: np.random.Generator) -> list[tuple[str, PrimitiveResult]]:
        """Run the oracle on the current episode until :meth:`done` or :attr:`max_steps` actions, scoring after
        each (what a demonstration does, without an env or cameras beyond ``scene.observe()``).

        Returns:
            One ``(instruction shown before the step, primitive result)`` per action taken; the instructions are
            :meth:`instruction_now` (a sequential task's per-step instruction).
        """
        steps = []
        for _ in range(self.max_steps):
            shown = self.instruction_now()
            action = self.oracle(scene.observe(), rng)
            steps.append((shown, self.execute(scene, action.pick_pose, action.place_pose)))
            self.reward()
            if self.done():
                break
        return steps

    # ------------------------------------------------------------------ oracle
    def oracle(self, obs: Observation, rng: np.random.Generator) -> Action:
        """Expert pick-and-place for the current state (Ravens oracle, Transporter Sec. 4).

        Picks the unmatched object farthest from its nearest free target, at a point sampled uniformly from
        that object's visible top-down mask; the place pose is the target pose composed with the
        object-to-pick offset (yaw only).

        Args:
            obs: an observation with ``heightmap`` and ``segmentation``.
            rng: random generator for the pick point.

        Raises:
            TaskError: if no goal is left or no object to pick is visible.
        """
        _, first_unmet = self.progress_now()
        if first_unmet == len(self.goals):
            raise TaskError("no goals left")
        goal = self.goals[first_unmet]
        matches = goal.matches.copy()
        poses = [self.scene.pose(b) for b in goal.objects]
        for i in range(len(goal.objects)):
            if goal.metric == "zone":
                if self.object_done(goal, i):
                    matches[i, :] = False
                continue
            if goal.replace:
                continue
            for j in np.flatnonzero(matches[i]):
                if self.is_match(poses[i], goal.targets[j], goal.symmetries[i]):
                    matches[i, :] = False
                    matches[:, j] = False
                    break
        nn_dist, nn_target = [], []
        for i in range(len(goal.objects)):
            js = np.flatnonzero(matches[i])
            if len(js) == 0:
                nn_dist.append(0.0)
                nn_target.append(-1)
                continue
            d = [np.linalg.norm(np.asarray(goal.targets[j][0]) - poses[i][0]) for j in js]
            nn_dist.append(float(np.min(d)))
            nn_target.append(int(js[int(np.argmin(d))]))
        for i in np.argsort(nn_dist, kind="stable")[::-1]:
            if nn_dist[i] <= 0:
                continue
            mask = obs.segmentation == goal.objects[i]
            if mask.sum() == 0:
                continue
            pixels = np.argwhere(mask)
            pick_pix = pixels[rng.integers(len(pixels))]
            pick_pos = pixel_to_xyz(pick_pix, obs.heightmap, self.scene.bounds, self.scene.pixel_size)
            pick_pose = (pick_pos, np.array([0.0, 0.0, 0.0, 1.0]))
            obj_pose = (poses[i][0], yaw_to_quat(quat_to_yaw(poses[i][1])))
            obj_to_pick = multiply(invert(pick_pose), obj_pose)
            place_pose = multiply(goal.targets[nn_target[i]], invert(obj_to_pick))
            if not goal.rotations:
                place_pose = (place_pose[0], np.array([0.0, 0.0, 0.0, 1.0]))
            return Action(pick_pose, place_pose)
        raise TaskError("the oracle sees no object left to pick")

    # ------------------------------------------------------------------ helpers
    def sample_pose(self, rng: np.random.Generator, radius: float, placed: list[tuple[np.ndarray, float]],
                    attempts: int = 100) -> Pose | None:
        """Sample a free table pose for an object with footprint ``radius`` (metres), or None if none fits.

        Positions are uniform inside the workspace shrunk by ``radius``; yaw is uniform. ``placed`` holds
        ``(xy, radius)`` of objects already on the table and is extended on success.

        Raises:
            ValueError: when the footprint is wider than the workspace.
        """
        b = self.scene.bounds
        if 2 * radius >= min(b[0, 1] - b[0, 0], b[1, 1] - b[1, 0]):
            raise ValueError(f"an object of footprint radius {radius:.3f} m does not fit the workspace "
                             f"({b[0, 1] - b[0, 0]:.2f} x {b[1, 1] - b[1, 0]:.2f} m)")
        for _ in range(attempts):
            xy = np.array([rng.uniform(b[0, 0] + radius, b[0, 1] - radius),
                           rng.uniform(b[1, 0] + radius, b[1, 1] - radius)])
            if all(np.linalg.norm(xy - q) > radius + r + 0.01 for q, r in placed):
                placed.append((xy, radius))
                return np.array([xy[0], xy[1], 0.0]), yaw_to_quat(rng.uniform(0, 2 * np.pi))
        return None


def _quat_matrix(quat) -> np.ndarray:
    """3x3 rotation matrix of a quaternion xyzw."""
    x, y, z, w = (float(v) for v in quat)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def check_color_overrides(goal: dict, keys: list[str], what: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Validate per-slot colour overrides parsed from an instruction (e.g. ``{"block0": "red"}``).

    Args:
        goal: the overrides.
        keys: the slot keys that take a colour, in order (e.g. ``block0``-``block5``).
        what: the objects, for the message (e.g. ``"the pyramid's blocks"``).
        extra: other keys the task accepts (e.g. ``"target"``).

    Returns:
        The given colours, in ``keys`` order.

    Raises:
        ValueError: an unknown key, an unknown colour, or one colour given to two slots (the message names them).
    """
    from vlarm.tasks.attributes import ALL_COLORS, COLORS

    unknown = sorted(set(goal) - set(keys) - set(extra))
    if unknown:
        raise ValueError(f"unknown goal overrides {unknown}; this task takes: {', '.join([*keys, *extra])}")
    for key in keys:
        if key in goal and goal[key] not in COLORS:
            raise ValueError(f"unknown colour {goal[key]!r} for {key}; known colours: {', '.join(ALL_COLORS)}")
    given = [goal[k] for k in keys if k in goal]
    if len(set(given)) < len(given):
        raise ValueError(f"{what} have distinct colours; overrides repeat one: {goal}")
    return given
