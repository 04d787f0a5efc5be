"""Gymnasium environment for the tabletop tasks (pick-and-place action mode).

Observation (a ``Dict`` space):
    ``rgb``: camera name -> ``(H, W, 3)`` uint8; ``depth``: camera name -> ``(H, W)`` float32 metres;
    ``heightmap``: ``(320, 160)`` float32 metres above the table; ``colormap``: ``(320, 160, 3)`` uint8;
    ``instruction``: the language goal (``Text``).
Action (a ``Dict`` space): ``pick_pose`` and ``place_pose``, each ``(7,)`` float32 = position (metres) +
quaternion xyzw; the quaternion is normalised (a zero quaternion means no rotation).

Rewards follow the task: partial credit judged on the current state of every goal, so they sum to the final
progress (at most 1) and a step that undoes earlier progress earns a negative reward (``vlarm.tasks.base``).
``terminated`` when every goal is met, ``truncated`` after the task's step budget (CLIPort: one mistake allowed).
As gymnasium requires, an episode that has ended must be ``reset()`` before the next ``step()``.

Seeds: ``reset(seed=s)`` builds the scene of seed ``s``. A ``reset()`` without a seed continues the sequence:
``previous seed + AUTORESET_SEED_STRIDE`` (2**32), or a seed drawn from ``np_random`` if the env was never seeded.
Vector envs rely on this: ``gym.make_vec(id, num_envs=n)`` reset with seed ``s`` seeds slot ``i`` with ``s + i``,
and gymnasium's autoreset (``AutoresetMode.NEXT_STEP``: the ``step()`` after an episode ends resets that slot,
ignores its action and returns the new scene's first observation) calls ``reset()`` without a seed, so slot ``i``
plays seeds ``s + i + k * 2**32``, k = 0, 1, 2, ...: no scene repeats within a slot or across slots (fewer than 2**32
slots), none is skipped, every one is reproducible from the ``seed`` its reset ``info`` reports, and autoreset never
lands on a split seed (all below 2**32), i.e. never on a demonstration, validation or test layout.

Pickling: a pickled env carries its constructor arguments only (never a PyBullet client id); unpickling builds a new
env with its own clients in the receiving process. Call ``reset()`` before using the copy.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vlarm.envs.spaces import InstructionText
from vlarm.sim import Scene, default_cameras, heightmap_shape
from vlarm.sim.cameras import RENDERER
from vlarm.sim.heightmap import WORKSPACE_BOUNDS
from vlarm.sim.scene import Observation
from vlarm.sim.transforms import pose_to_array
from vlarm.tasks import SUCCESS_THRESHOLD, TaskError, make_task
from vlarm.tasks.attributes import check_split, is_novel, novelty

INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " .,'-!?:;()"

#: What an unseeded ``reset()`` adds to the previous episode's seed (module docstring): larger than any split seed and
#: than any plausible number of vector env slots, so autoreset sequences of different slots never meet.
AUTORESET_SEED_STRIDE = 2**32


def _normalise_pose(arr) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(arr, dtype=np.float64).reshape(-1)
    if arr.shape != (7,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"a pose must be 7 finite numbers (xyz + quaternion xyzw), got {arr.tolist()}")
    quat = arr[3:]
    norm = np.linalg.norm(quat)
    quat = quat / norm if norm > 1e-8 else np.array([0.0, 0.0, 0.0, 1.0])
    return arr[:3], quat


class TabletopEnv(gym.Env):
    """A language-conditioned tabletop task as a gymnasium ``Env`` (ids ``vlarm/<task>-v0``).

    Args:
        task: registered task name (see ``vlarm.tasks.list_tasks()``); unknown names raise ValueError.
        split: default split for :meth:`reset` (``"train"``, ``"val"``, ``"test"``).
        camera_scale: camera resolution relative to CLIPort's 480x640 (same field of view).
        render_mode: ``None`` or ``"rgb_array"`` (returns the front camera image).
        renderer: ``"tiny"``, ``"egl"`` or ``"auto"`` (see :class:`vlarm.sim.Scene`).
        render_terminal: render the observation returned by the step that ends an episode. Rendering is ~90% of
            an observation's cost and demonstration collection and evaluation never look at that observation, so
            they pass False: the terminal observation then has all-zero images and maps (and an empty
            segmentation), which is documented and still inside the observation space.
        appearance: optional callable ``appearance(scene, rng)`` applied after each scene reset, before the first
            observation (a table colour, background or lighting change: RT-1's background test, the trust
            reports); it receives a generator seeded from the episode seed, so a seed gives the same look.

    Pickling keeps these arguments (with the renderer in use, ``"auto"`` resolved) and rebuilds the env, with new
    PyBullet clients, where it is unpickled; the copy must be ``reset()`` before use (the scene is not carried).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, task: str, split: str = "train", camera_scale: float = 1.0, render_mode: str | None = None,
                 renderer: str = RENDERER, render_terminal: bool = True, appearance=None):
        self.task_name = task
        self.camera_scale = float(camera_scale)
        self.task = make_task(task)
        self.split = check_split(split)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.cameras = default_cameras(camera_scale)
        self.scene = Scene(cameras=self.cameras, renderer=renderer)
        self.render_terminal = bool(render_terminal)
        self.appearance = appearance
        hm_shape = heightmap_shape(self.scene.bounds, self.scene.pixel_size)
        z_max = float(WORKSPACE_BOUNDS[2, 1] - WORKSPACE_BOUNDS[2, 0])
        self.observation_space = spaces.Dict({
            "rgb": spaces.Dict({c.name: spaces.Box(0, 255, (*c.image_size, 3), np.uint8) for c in self.cameras}),
            "depth": spaces.Dict({c.name: spaces.Box(0.0, c.z_range[1], c.image_size, np.float32)
                                  for c in self.cameras}),
            "heightmap": spaces.Box(0.0, z_max, hm_shape, np.float32),
            "colormap": spaces.Box(0, 255, (*hm_shape, 3), np.uint8),
            "instruction": InstructionText(max_length=256, charset=INSTRUCTION_CHARSET),
        })
        b = WORKSPACE_BOUNDS
        low = np.array([b[0, 0], b[1, 0], b[2, 0], -1, -1, -1, -1], np.float32)
        high = np.array([b[0, 1], b[1, 1], b[2, 1], 1, 1, 1, 1], np.float32)
        self.action_space = spaces.Dict({"pick_pose": spaces.Box(low, high, dtype=np.float32),
                                         "place_pose": spaces.Box(low, high, dtype=np.float32)})
        self._sim_obs: Observation | None = None
        self._oracle_rng = np.random.default_rng(0)
        self.steps = 0
        self.total_reward = 0.0
        self.seed_value: int | None = None
        self._ended = False

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        """The constructor arguments (no PyBullet client id, no scene contents, no RNG state)."""
        return {"task": self.task_name, "split": self.split, "camera_scale": self.camera_scale,
                "render_mode": self.render_mode, "renderer": self.scene.renderer,
                "render_terminal": self.render_terminal, "appearance": self.appearance}

    def __setstate__(self, state: dict) -> None:
        """Build the env anew in this process (its own PyBullet clients); ``reset()`` it before use."""
        self.__init__(**state)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode.

        Args:
            seed: episode seed; the same seed (and split/options) gives the same scene and oracle episode. None:
                the previous seed + :data:`AUTORESET_SEED_STRIDE` (a fresh random seed if never seeded); the
                split is then the ``options`` split or the constructor's, as for any reset.
            options: ``{"split": ..., "instruction": "put the red blocks in a green bowl"}``; an instruction is
                grounded by the task (ValueError if it cannot be) and the scene is built to match it.

        Returns:
            ``(observation, info)``; info has ``seed``, ``split``, ``instruction``, ``goal_attributes`` (role ->
            ``{"kind", "value", "novel"}``, novel = outside the training vocabulary) and ``novelty``
            (``"all"``, ``"some"`` or ``"none"`` of the goal attributes novel).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        split = check_split(options.get("split", self.split))
        goal = None
        if options.get("instruction"):
            goal = self.task.parse_instruction(options["instruction"])
        if seed is None:
            seed = (int(self.np_random.integers(0, 2**31 - 1)) if self.seed_value is None
                    else self.seed_value + AUTORESET_SEED_STRIDE)
        self.seed_value = int(seed)
        scene_rng = np.random.default_rng([self.seed_value, 0])
        self._oracle_rng = np.random.default_rng([self.seed_value, 1])
        instruction = self.task.reset(self.scene, scene_rng, split, goal)
        if self.appearance is not None:
            self.appearance(self.scene, np.random.default_rng([self.seed_value, 2]))
        self.steps, self.total_reward, self._ended = 0, 0.0, False
        self._sim_obs = self.scene.observe()
        variants = {kind: self.task.attribute_variant(kind) for kind, _ in self.task.goal_attributes.values()}
        attributes = {role: {"kind": kind, "value": value, "novel": is_novel(kind, value, variants[kind])}
                      for role, (kind, value) in self.task.goal_attributes.items()}
        return self._observation(), {"seed": self.seed_value, "split": split, "instruction": instruction,
                                     "goal_attributes": attributes,
                                     "novelty": novelty(self.task.goal_attributes, variants)}

    def step(self, action: dict):
        """Execute one pick-and-place.

        Args:
            action: ``{"pick_pose": (7,), "place_pose": (7,)}``.

        Returns:
            ``(observation, reward, terminated, truncated, info)``; info has ``total_reward`` (progress of the
            current state), ``success`` (total reward > 0.99 now), ``primitive_failure`` (None or the primitive's
            failure code) and ``primitive_message``.

        Raises:
            ValueError: if a pose is malformed.
            RuntimeError: before the first ``reset()``, or after the episode terminated or was truncated.
        """
        if self._sim_obs is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError(f"the episode ended after {self.steps} steps (terminated or truncated); call reset() "
                               "before step()")
        if not isinstance(action, Mapping) or not {"pick_pose", "place_pose"} <= set(action):
            raise ValueError(f"an action is a dict with 'pick_pose' and 'place_pose' (7 numbers each: xyz metres + "
                             f"quaternion xyzw), got {type(action).__name__}")
        pick, place = _normalise_pose(action["pick_pose"]), _normalise_pose(action["place_pose"])
        result = self.task.execute(self.scene, pick, place)
        self.steps += 1
        reward, info = self.task.reward()
        self.total_reward += reward
        terminated = self.task.done()
        truncated = not terminated and self.steps >= self.task.max_steps
        self._ended = terminated or truncated
        self._sim_obs = self.scene.observe() if self.render_terminal or not self._ended else self._blank_observation()
        info.update(total_reward=self.total_reward, success=self.total_reward > SUCCESS_THRESHOLD,
                    primitive_failure=result.failure, primitive_message=result.message,
                    grasped=result.grasped_body is not None, steps=self.steps)
        return self._observation(), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        """The front camera's current RGB image, ``(H, W, 3)`` uint8 (``render_mode="rgb_array"``)."""
        if self._sim_obs is None:
            return None
        return self._sim_obs.rgb[self.cameras[0].name]

    def close(self):
        """Release the PyBullet clients."""
        self.scene.close()

    # ------------------------------------------------------------------ extras
    def oracle_action(self) -> dict:
        """The task oracle's action for the current state (for demonstrations and the ``oracle`` policy).

        Raises:
            vlarm.tasks.TaskError: if nothing is left to pick.
        """
        if self._sim_obs is None:
            raise RuntimeError("call reset() before oracle_action()")
        act = self.task.oracle(self._sim_obs, self._oracle_rng)
        return {"pick_pose": pose_to_array(act.pick_pose), "place_pose": pose_to_array(act.place_pose)}

    def ee_state(self) -> np.ndarray:
        """Suction tip pose, ``(7,)`` float32 (xyz metres + quaternion xyzw)."""
        return pose_to_array(self.scene.arm.tip_pose())

    @property
    def instruction(self) -> str:
        """The current language goal (in sequential tasks, the current step's instruction)."""
        return self.task.instruction_now()

    def _blank_observation(self) -> Observation:
        """All-zero images and maps, empty segmentation (the unrendered terminal observation)."""
        hm = tuple(self.observation_space["heightmap"].shape)
        obs = Observation(heightmap=np.zeros(hm, np.float32), colormap=np.zeros((*hm, 3), np.uint8),
                          segmentation=np.full(hm, -1, np.int32))
        for cam in self.cameras:
            obs.rgb[cam.name] = np.zeros((*cam.image_size, 3), np.uint8)
            obs.depth[cam.name] = np.zeros(cam.image_size, np.float32)
        return obs

    def _observation(self) -> dict:
        o = self._sim_obs
        return {"rgb": dict(o.rgb), "depth": dict(o.depth), "heightmap": o.heightmap, "colormap": o.colormap,
                "instruction": self.task.instruction_now()}


__all__ = ["AUTORESET_SEED_STRIDE", "TabletopEnv", "TaskError"]
