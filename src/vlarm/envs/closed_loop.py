"""Gymnasium environment for closed-loop control: the ``ee_delta`` action mode (ids ``vlarm/<task>-ee-v0``).

RT-1 (Brohan et al., RSS 2023, Sec. 3) acts at a fixed rate from camera images; this env gives it the tabletop
tasks in that form. Every control step (:data:`vlarm.sim.servo.CONTROL_HZ` = 10 Hz, 24 physics steps) the action
moves the suction tip by a bounded delta (:class:`vlarm.sim.servo.TipServo`).

Observation (a ``Dict`` space):
    ``rgb``: ``(H, W, 3)`` uint8, the front camera at ``image_scale`` x 480x640 (default 0.2: 96 x 128);
    ``state``: ``(8,)`` float32, tip position (metres) + quaternion xyzw + 1.0 when suction holds an object;
    ``instruction``: the language goal (``Text``; a sequential task's current step).
Action (a ``Dict`` space):
    ``translation``: ``(3,)`` float32 metres in [-0.03, 0.03]; ``yaw``: ``(1,)`` float32 radians in
    [-pi/8, pi/8]; ``suction``: 0 off / 1 on; ``terminate``: 1 ends the episode (RT-1's mode token), 0 moves.

Rewards, partial credit and the final-state score are the task's, as in :class:`TabletopEnv`. ``terminated`` when
every goal is met or the agent terminates; ``truncated`` after ``max_control_steps`` control steps (default:
:data:`CONTROL_STEPS_PER_ACTION` per pick-and-place the task allows), so an agent that never terminates is cut
there and scored on the state it left. Only tasks acted on by suction pick-and-place are offered (the oracle's
waypoints are those of the pick-and-place primitive): :data:`EE_DELTA_EXCLUDED` lists the families left out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from gymnasium import spaces

from vlarm.envs.spaces import InstructionText
from vlarm.envs.tabletop import INSTRUCTION_CHARSET, TabletopEnv
from vlarm.sim.cameras import RENDERER, default_cameras, render
from vlarm.sim.servo import CONTROL_HZ, MAX_TRANSLATION, MAX_YAW, PickPlaceWaypoints, TipServo
from vlarm.sim.transforms import pose_to_array
from vlarm.tasks import SUCCESS_THRESHOLD, TaskError
from vlarm.tasks.base import Task

#: Control steps allowed per pick-and-place of the task's step budget (a clean oracle pick-and-place takes 40-70).
CONTROL_STEPS_PER_ACTION = 100
#: Families whose motion is not a suction pick-and-place (pushing with a blade, dragging a rope).
EE_DELTA_EXCLUDED = ("separating-piles", "align-rope")


def supports_ee_delta(task: Task) -> bool:
    """Whether a task acts by the default suction pick-and-place (its :meth:`Task.execute` is not overridden)."""
    return type(task).execute is Task.execute


class ClosedLoopEnv(TabletopEnv):
    """A tabletop task with the ``ee_delta`` action space at :data:`CONTROL_HZ` Hz (module docstring).

    Args:
        task: registered task name whose family acts by pick-and-place (ValueError otherwise, naming the
            excluded families).
        split: default split for :meth:`reset`.
        camera_scale: resolution of the three planning cameras (used by the oracle and the scene's fused maps).
        image_scale: resolution of the policy camera (the front camera) relative to 480x640.
        max_control_steps: step limit; None: :data:`CONTROL_STEPS_PER_ACTION` x the task's step budget.
        render_mode: ``None`` or ``"rgb_array"`` (the policy camera image).
        renderer: ``"tiny"``, ``"egl"`` or ``"auto"``.
        appearance: optional callable ``appearance(scene, rng)`` applied after each scene reset (see
            :class:`TabletopEnv`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, task: str, split: str = "train", camera_scale: float = 1.0, image_scale: float = 0.2,
                 max_control_steps: int | None = None, render_mode: str | None = None, renderer: str = RENDERER,
                 appearance=None, render_terminal: bool = True):
        super().__init__(task, split=split, camera_scale=camera_scale, render_mode=render_mode, renderer=renderer,
                         render_terminal=render_terminal, appearance=appearance)
        if not supports_ee_delta(self.task):
            self.close()
            raise ValueError(f"task {task!r} does not act by suction pick-and-place, so it has no ee_delta mode; "
                             f"excluded families: {', '.join(EE_DELTA_EXCLUDED)}")
        if max_control_steps is not None and int(max_control_steps) < 1:
            raise ValueError(f"max_control_steps must be >= 1 or None, got {max_control_steps}")
        self.image_scale = float(image_scale)
        self.policy_camera = default_cameras(self.image_scale)[0]
        self.fixed_max_control_steps = None if max_control_steps is None else int(max_control_steps)
        self.max_control_steps = self.fixed_max_control_steps or CONTROL_STEPS_PER_ACTION
        h, w = self.policy_camera.image_size
        self.observation_space = spaces.Dict({
            "rgb": spaces.Box(0, 255, (h, w, 3), np.uint8),
            "state": spaces.Box(-2.0, 2.0, (8,), np.float32),
            "instruction": InstructionText(max_length=256, charset=INSTRUCTION_CHARSET),
        })
        self.action_space = spaces.Dict({
            "translation": spaces.Box(-MAX_TRANSLATION, MAX_TRANSLATION, (3,), np.float32),
            "yaw": spaces.Box(-MAX_YAW, MAX_YAW, (1,), np.float32),
            "suction": spaces.Discrete(2),
            "terminate": spaces.Discrete(2),
        })
        self.servo = TipServo(self.scene)
        self._expert: PickPlaceWaypoints | None = None
        self._contact = False
        self._rgb: np.ndarray | None = None

    def __getstate__(self) -> dict:
        """The constructor arguments (see :class:`TabletopEnv`)."""
        state = super().__getstate__()
        return {**state, "image_scale": self.image_scale, "max_control_steps": self.fixed_max_control_steps}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode (same seeds, splits, options and info as :meth:`TabletopEnv.reset`).

        ``info`` also has ``max_control_steps``.
        """
        _, info = super().reset(seed=seed, options=options)
        self.servo.reset()
        self._expert, self._contact = None, False
        if self.fixed_max_control_steps is None:
            self.max_control_steps = CONTROL_STEPS_PER_ACTION * int(self.task.max_steps)
        info["max_control_steps"] = self.max_control_steps
        self._render()
        return self._observation(), info

    def step(self, action: dict):
        """Execute one control step.

        Args:
            action: ``{"translation": (3,), "yaw": (1,) or float, "suction": 0/1, "terminate": 0/1}``.

        Returns:
            ``(observation, reward, terminated, truncated, info)``; info has ``total_reward``, ``success``,
            ``steps``, ``contact``, ``grasped`` and ``terminated_by_agent``.

        Raises:
            ValueError: a malformed action. RuntimeError: before ``reset()`` or after the episode ended.
        """
        if self._sim_obs is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError(f"the episode ended after {self.steps} control steps; call reset() before step()")
        translation, yaw, suction, terminate = parse_ee_action(action)
        if not terminate:
            result = self.servo.step(translation, yaw, suction)
            self._contact = result.contact
        self.steps += 1
        reward, info = self.task.reward()
        self.total_reward += reward
        terminated = bool(terminate) or self.task.done()
        truncated = not terminated and self.steps >= self.max_control_steps
        self._ended = terminated or truncated
        self._render()
        info.update(total_reward=self.total_reward, success=self.total_reward > SUCCESS_THRESHOLD, steps=self.steps,
                    contact=self._contact, grasped=self.scene.arm.grasped_body is not None,
                    terminated_by_agent=bool(terminate))
        return self._observation(), float(reward), terminated, truncated, info

    def render(self):
        """The policy camera's current RGB image, ``(H, W, 3)`` uint8."""
        return self._rgb

    def oracle_action(self) -> dict:
        """The scripted expert's next control step: the task oracle's pick and place poses
        (:meth:`vlarm.tasks.base.Task.oracle`, planned on a full observation when a pick-and-place starts)
        followed as :class:`vlarm.sim.servo.PickPlaceWaypoints`; ``terminate`` = 1 once every goal is met or
        nothing is left to pick.
        """
        if self._sim_obs is None:
            raise RuntimeError("call reset() before oracle_action()")
        if self.task.done():
            return ee_action(np.zeros(3), 0.0, False, terminate=True)
        for _ in range(2):
            if self._expert is None or self._expert.finished:
                try:
                    act = self.task.oracle(self.scene.observe(), self._oracle_rng)
                except TaskError:
                    return ee_action(np.zeros(3), 0.0, False, terminate=True)
                self._expert = PickPlaceWaypoints(act.pick_pose, act.place_pose)
            tip = np.asarray(self.scene.arm.tip_pose()[0])
            move, turn, suction = self._expert.command(tip, self.servo.yaw, self._contact,
                                                       self.scene.arm.grasped_body is not None)
            if not self._expert.finished:
                return ee_action(move, turn, suction)
        return ee_action(move, turn, suction)

    @property
    def oracle_correcting(self) -> bool:
        """Whether the expert's last :meth:`oracle_action` came from a closed-loop move towards a goal (approach,
        lift, retreat: :attr:`PickPlaceWaypoints.CORRECTING_PHASES`), so that noise added to it is corrected by
        the expert's next command (used for DART-style noise injection)."""
        return self._expert is not None and self._expert.correcting

    def _render(self) -> None:
        self._rgb = render(self.scene.client, self.policy_camera, self.scene.renderer)[0]

    def _observation(self) -> dict:
        state = np.concatenate([pose_to_array(self.scene.arm.tip_pose()),
                                [float(self.scene.arm.grasped_body is not None)]]).astype(np.float32)
        return {"rgb": self._rgb, "state": state, "instruction": self.task.instruction_now()}


def ee_action(translation, yaw: float, suction: bool, terminate: bool = False) -> dict:
    """An ``ee_delta`` action dict from its parts (translation metres, yaw radians), clipped to the space."""
    t = np.clip(np.asarray(translation, np.float32).reshape(3), -MAX_TRANSLATION, MAX_TRANSLATION)
    y = np.clip(np.asarray([yaw], np.float32), -MAX_YAW, MAX_YAW)
    return {"translation": t.astype(np.float32), "yaw": y.astype(np.float32), "suction": int(bool(suction)),
            "terminate": int(bool(terminate))}


def parse_ee_action(action) -> tuple[np.ndarray, float, bool, bool]:
    """Validate an ``ee_delta`` action: ``(translation (3,) metres, yaw radians, suction, terminate)``.

    Raises:
        ValueError: not a dict with ``translation``, ``yaw``, ``suction`` and ``terminate``, or non-finite numbers.
    """
    keys = ("translation", "yaw", "suction", "terminate")
    if not isinstance(action, Mapping) or not set(keys) <= set(action):
        raise ValueError(f"an ee_delta action is a dict with {list(keys)} (translation (3,) metres, yaw radians, "
                         f"suction 0/1, terminate 0/1), got {type(action).__name__}"
                         f"{' with keys ' + str(sorted(action)) if isinstance(action, Mapping) else ''}")
    translation = np.asarray(action["translation"], dtype=np.float64).reshape(-1)
    yaw = np.asarray(action["yaw"], dtype=np.float64).reshape(-1)
    if translation.shape != (3,) or yaw.shape != (1,) or not (np.all(np.isfinite(translation))
                                                                 and np.isfinite(yaw[0])):
        raise ValueError(f"translation must be 3 finite numbers (metres) and yaw 1 finite number (radians), got "
                         f"{translation.tolist()} and {yaw.tolist()}")
    return translation, float(yaw[0]), bool(int(action["suction"])), bool(int(action["terminate"]))


__all__ = ["CONTROL_STEPS_PER_ACTION", "ClosedLoopEnv", "EE_DELTA_EXCLUDED", "ee_action", "parse_ee_action",
           "supports_ee_delta"]
