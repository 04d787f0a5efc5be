"""One planned episode: perceive, plan a skill, execute it, repeat; then judge the final state.

The scene is SayCan's tabletop (:mod:`vlarm.tasks.saycan_tabletop`), rebuilt from a seed and an optional
:class:`SceneSpec`. Each step the cameras are rendered, the objects are named by the VLM (:mod:`.perception`), the
planner chooses a skill (:mod:`.saycan`), and an executor carries it out:

* :class:`OracleExecutor`: the scripted pick-and-place of the named block onto the named target (simulator ground
  truth). The final state then judges the *plan*: SayCan's plan success.
* :class:`PolicyExecutor`: a learned pick-and-place policy told the skill text. The final state judges the whole
  system: SayCan's execution success.

Bad input never crashes: an empty instruction, or one naming an object the cameras do not see, is answered with a
plain message and ``done()``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vlarm.planning.affordances import PlanState
from vlarm.planning.perception import Perception, describe_scene
from vlarm.planning.saycan import PlanContext, PlanStep, absent_references, misspelt_colours
from vlarm.planning.skills import DONE_SKILL, Skill, generate_skills
from vlarm.sim import Scene
from vlarm.sim.scene import Observation
from vlarm.sim.transforms import array_to_pose
from vlarm.tasks.base import TaskError
from vlarm.tasks.saycan_tabletop import SayCanTabletop, SceneSpec


@dataclass
class StepResult:
    """One executed (or refused) step.

    Attributes:
        skill: the chosen skill's text.
        options: the top options with their scores (dicts of :class:`~vlarm.planning.saycan.OptionScore`).
        generated: text the LM wrote for this step (generative planner), if any.
        failure: ``None`` or why execution failed (the primitive's code or the executor's message).
        seconds_plan: wall time of the planner's decision.
    """

    skill: str
    options: list[dict] = field(default_factory=list)
    generated: str = ""
    failure: str | None = None
    seconds_plan: float = 0.0


@dataclass
class EpisodeResult:
    """A planned episode.

    Attributes:
        instruction: the instruction.
        seed: the scene's seed.
        seen: object names perceived at the start.
        steps: the steps, ``done()`` included when chosen.
        stop: ``"done"``, ``"step limit"``, ``"refused"`` (bad input) or ``"error"``.
        message: a plain explanation for ``"refused"`` / ``"error"``.
        success: the goal checker's verdict on the final state (None without a checker).
        explanation: the LM's explanation line (chain of thought), if asked for.
        video: path of the video, if written.
        seconds: wall time of the episode.
    """

    instruction: str
    seed: int
    seen: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    stop: str = ""
    message: str = ""
    success: bool | None = None
    explanation: str = ""
    video: str | None = None
    seconds: float = 0.0

    @property
    def plan(self) -> list[str]:
        """The skill texts in order."""
        return [s.skill for s in self.steps]


class OracleExecutor:
    """Executes a skill with the scripted pick-and-place (ground truth): for plan success."""

    name = "oracle"

    def __call__(self, task: SayCanTabletop, obs: Observation, skill: Skill, rng: np.random.Generator):
        """Run the skill; returns the primitive's result.

        Raises:
            TaskError: the block or target is not in the scene.
        """
        action = task.skill_oracle(skill.pick, skill.place, obs, rng)
        return task.execute(task.scene, action.pick_pose, action.place_pose)


class PolicyExecutor:
    """Executes a skill with a learned pick-and-place policy told the skill text: for execution success.

    Args:
        policy: anything with ``select_action(observation, instruction) -> {"pick_pose", "place_pose"}``.
        label: name for reports (e.g. the checkpoint path).
    """

    name = "policy"

    def __init__(self, policy, label: str = "policy"):
        self.policy, self.label = policy, label

    def __call__(self, task: SayCanTabletop, obs: Observation, skill: Skill, rng: np.random.Generator):
        """Run the skill; returns the primitive's result."""
        action = self.policy.select_action(observation_dict(obs, skill.text), skill.text)
        return task.execute(task.scene, array_to_pose(action["pick_pose"]), array_to_pose(action["place_pose"]))


def observation_dict(obs: Observation, instruction: str = "") -> dict:
    """The env-style observation dict of a scene observation (``colormap``, ``heightmap``, cameras, instruction)."""
    return {"rgb": dict(obs.rgb), "depth": dict(obs.depth), "heightmap": obs.heightmap, "colormap": obs.colormap,
            "instruction": instruction}


class PlanRunner:
    """Runs planned episodes in one simulator (module docstring).

    Args:
        planner: a planner from :mod:`vlarm.planning.saycan`.
        perception: a :class:`~vlarm.planning.perception.Perception`.
        executor: :class:`OracleExecutor` or :class:`PolicyExecutor`.
        camera_scale: camera resolution relative to 480x640; None: the scale the executor's policy learned from
            (1.0 when it records none, and for the oracle; :func:`vlarm.policies.base.env_options_at_scale`).

    The scene renders with the executor's policy's renderer (:func:`vlarm.policies.base.agent_env_options`), the
    default one for the oracle.
    """

    def __init__(self, planner, perception: Perception, executor, camera_scale: float | None = None):
        from vlarm.policies.base import agent_env_options, env_options_at_scale
        from vlarm.sim import default_cameras
        from vlarm.sim.cameras import RENDERER

        self.planner, self.perception, self.executor = planner, perception, executor
        options = env_options_at_scale(agent_env_options(getattr(executor, "policy", None)), camera_scale)
        self.scene = Scene(cameras=default_cameras(options["camera_scale"]),
                           renderer=options.get("renderer", RENDERER))
        self.task = SayCanTabletop(name="saycan-tabletop")

    def close(self) -> None:
        """Release the simulator."""
        self.scene.close()

    def reset(self, seed: int, spec: SceneSpec | None = None, split: str = "test") -> None:
        """Build the scene of ``seed`` (and ``spec``)."""
        rng = np.random.default_rng([int(seed), 0])
        self.task.reset(self.scene, rng, split, {"spec": spec} if spec is not None else None)

    def run(self, instruction: str, seed: int, spec: SceneSpec | None = None, check=None,
            video_path: str | Path | None = None, on_step=None) -> EpisodeResult:
        """Plan and execute ``instruction`` in the scene of ``seed``.

        Args:
            instruction: the instruction (may be empty or name absent objects: answered, never raised).
            seed: scene seed.
            spec: the scene's colours and starts (None: random).
            check: optional ``check(final, initial) -> bool`` goal checker.
            video_path: optional ``.mp4``/``.gif`` path.
            on_step: optional ``callback(index, PlanStep, StepResult)`` after each decision.

        Returns:
            An :class:`EpisodeResult`.
        """
        from vlarm.sim.video import VideoRecorder, VideoWriteError

        start = time.perf_counter()
        self.reset(seed, spec)
        task, scene = self.task, self.scene
        rng = np.random.default_rng([int(seed), 1])
        result = EpisodeResult(instruction=instruction, seed=int(seed))
        recorder = VideoRecorder(scene.cameras[0], caption=instruction) if video_path is not None else None
        if recorder is not None:
            recorder(scene)
            scene.frame_callback = recorder
        initial = task.object_positions()
        try:
            self._loop(instruction, result, rng, recorder, on_step)
        finally:
            scene.frame_callback = None
        if check is not None:
            result.success = bool(check(task.object_positions(), initial))
        if recorder is not None:
            for _ in range(5):
                recorder(scene)
            try:
                result.video = str(recorder.write(video_path))
            except VideoWriteError as err:
                result.message = (result.message + "; " if result.message else "") + str(err)
        result.seconds = time.perf_counter() - start
        return result

    def _loop(self, instruction: str, result: EpisodeResult, rng, recorder, on_step) -> None:
        task, scene, planner = self.task, self.scene, self.planner
        obs = scene.observe()
        detections = self.perception.detect(obs.colormap, obs.heightmap)
        result.seen = [d.name for d in detections]
        skills = generate_skills(result.seen)
        refusal = refusal_message(instruction, result.seen, planner.config.refuse_absent)
        if refusal:
            result.stop, result.message = "refused", refusal
            result.steps.append(StepResult(DONE_SKILL.text))
            if on_step is not None:
                on_step(0, PlanStep(DONE_SKILL), result.steps[-1])
            return
        scene_line = describe_scene(detections)
        if planner.config.explain:
            result.explanation = planner.explain(scene_line, instruction)
        history: list[Skill] = []
        for index in range(planner.config.max_steps + 1):
            state = PlanState(detections, observation_dict(obs), task)
            ctx = PlanContext(instruction, scene_line, list(history), skills, state, result.explanation)
            t0 = time.perf_counter()
            decision = planner.step(ctx)
            step = StepResult(decision.skill.text, [_option_dict(o) for o in decision.options], decision.generated,
                              seconds_plan=time.perf_counter() - t0)
            result.steps.append(step)
            if decision.skill.is_done:
                result.stop = "done"
                if on_step is not None:
                    on_step(index, decision, step)
                return
            if index == planner.config.max_steps:
                result.steps.pop()
                result.stop = "step limit"
                return
            if recorder is not None:
                recorder.caption = f"{instruction} | {decision.skill.text}"
            try:
                outcome = self.executor(task, obs, decision.skill, rng)
                step.failure = outcome.failure
            except TaskError as err:
                step.failure = str(err)
            if on_step is not None:
                on_step(index, decision, step)
            history.append(decision.skill)
            scene.settle()
            obs = scene.observe()
            detections = self.perception.detect(obs.colormap, obs.heightmap)


def refusal_message(instruction: str, seen: list[str], refuse_absent: bool = True) -> str:
    """Why an instruction cannot be planned at all (``""`` when it can): empty, a misspelt colour ("purpel block"),
    or naming objects not seen."""
    if not instruction.strip():
        return "the instruction is empty: nothing to do"
    typos = misspelt_colours(instruction)
    if typos:
        fixes = "; ".join(f"'{word}' is not a colour (did you mean '{colour}'?)" for word, colour in typos)
        return f"{fixes}; nothing to do"
    if refuse_absent:
        missing = absent_references(instruction, seen)
        if missing:
            names = " and ".join(f"no {m}" for m in missing)
            return f"there is {names} on the table (the cameras see: {', '.join(seen) or 'nothing'}); nothing to do"
    return ""


def _option_dict(option) -> dict:
    d = asdict(option)
    d["skill"] = option.skill.text
    return d


__all__ = ["EpisodeResult", "OracleExecutor", "PlanRunner", "PolicyExecutor", "StepResult", "observation_dict",
           "refusal_message"]
