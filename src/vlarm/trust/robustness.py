"""Robustness families with severities, applied to the simulator scene or the observation, for policies and VLMs.

A family has an ordered list of severities; severity 0 is always the clean condition, so every curve starts at
the clean score and the relative drop ``(clean - perturbed) / clean`` is read off the same seeds (paired):

=====================  ==========================================================================================
family                 severities (where it acts)
=====================  ==========================================================================================
``unseen_attributes``  seen-colour task variant, unseen-colour variant (task variant; broken down all/some/none novel)
``distractors``        0, 2, 4, 6 extra blocks in non-goal colours (scene)
``table_texture``      default, light-grey table, wood-brown table + white background, checkerboard table (scene)
``lighting``           default, side light, low grazing light, dim light (renderer light direction/coefficients)
``camera_jitter``      0, 0.5 cm / 0.5 deg, 1 cm / 1 deg, 2 cm / 2 deg camera pose error after calibration (render)
``depth_noise``        0, 2, 5, 10 mm Gaussian noise on the heightmap (observation)
``occlusion``          0, 5, 10, 20 % of the workspace covered by grey patches in the colour map (observation)
=====================  ==========================================================================================

The outcome of an episode is CLIPort's score (total reward, partial credit), over ``steps`` pick-and-places
(``steps=1``: the first step only, a cheap proxy that needs no long rollout), for any agent with
``select_action(observation, instruction)``; a VLM is scored by zero-shot classification of object crops taken
from the same perturbed scenes (:func:`vlm_crops`). Robustness families follow Hendrycks & Dietterich 2019 (severity
levels, relative drop) and the appearance shifts of RT-1 (Brohan et al. 2022, Sec. 6.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vlarm.sim import appearance
from vlarm.sim.heightmap import xyz_to_pixel
from vlarm.tasks.attributes import COLORS

_GREY = (0.7, 0.7, 0.7)
#: family -> severities (level 0 is the clean condition); see the module docstring.
FAMILIES: dict[str, tuple] = {
    "unseen_attributes": ("seen-colors", "unseen-colors"),
    "distractors": (0, 2, 4, 6),
    "table_texture": ("default", "light-grey", "wood+white-background", "checkerboard"),
    "lighting": (None, appearance.Lighting((1.0, 0.0, 0.3), 0.5, 0.6, 0.1),
                 appearance.Lighting((0.0, 1.0, 0.05), 0.3, 0.8, 0.2), appearance.Lighting((1, 1, 1), 0.25, 0.15, 0.0)),
    "camera_jitter": (0.0, 0.005, 0.01, 0.02),
    "depth_noise": (0.0, 0.002, 0.005, 0.01),
    "occlusion": (0.0, 0.05, 0.10, 0.20),
}
#: Families that act on the scene or renderer (the rest act on the observation only).
SCENE_FAMILIES = ("distractors", "table_texture", "lighting", "camera_jitter")


def severity_label(family: str, level: int) -> str:
    """Human-readable severity, e.g. ``"1.0 cm / 1.0 deg"`` for ``camera_jitter`` level 2."""
    value = check_level(family, level)
    if family == "lighting":
        return ["default", "side light", "grazing light", "dim"][level]
    if family == "camera_jitter":
        return f"{100 * value:.1f} cm / {100 * value:.1f} deg" if value else "none"
    if family == "depth_noise":
        return f"{1000 * value:.0f} mm"
    if family == "occlusion":
        return f"{100 * value:.0f} %"
    if family == "distractors":
        return f"+{value}"
    return str(value)


def check_level(family: str, level: int):
    """The severity value of ``family`` at ``level``.

    Raises:
        ValueError: an unknown family or a level out of range (the message lists the valid ones).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown robustness family {family!r}; valid: {', '.join(FAMILIES)}")
    levels = FAMILIES[family]
    if not 0 <= level < len(levels):
        raise ValueError(f"{family} has severities 0..{len(levels) - 1}, got {level}")
    return levels[level]


def task_for(task: str, family: str, level: int) -> str:
    """The task to run: for ``unseen_attributes`` the task's colour variant of that level, else ``task``.

    Raises:
        ValueError: ``unseen_attributes`` on a task without ``-seen-colors`` / ``-unseen-colors`` variants.
    """
    if family != "unseen_attributes":
        return task
    for suffix in ("-seen-colors", "-unseen-colors", "-full"):
        if task.endswith(suffix):
            return task[: -len(suffix)] + "-" + check_level(family, level)
    raise ValueError(f"unseen_attributes needs a task with colour variants (e.g. put-block-in-bowl-seen-colors), "
                     f"got {task!r}")


def _free_positions(scene, rng: np.random.Generator, n: int, min_dist: float = 0.09) -> list[np.ndarray]:
    taken = [scene.pose(b)[0][:2] for b in scene.objects]
    out: list[np.ndarray] = []
    for _ in range(400):
        if len(out) == n:
            break
        xy = np.array([rng.uniform(0.3, 0.7), rng.uniform(-0.42, 0.42)])
        if all(np.linalg.norm(xy - q) >= min_dist for q in taken + out):
            out.append(xy)
    return out


def apply_scene(env, family: str, level: int, rng: np.random.Generator, goal_colors: tuple[str, ...] = ()) -> None:
    """Change the scene of a freshly reset env for a scene family (others: nothing to do here).

    Args:
        env: a :class:`~vlarm.envs.tabletop.TabletopEnv` right after ``reset``.
        family: a family of :data:`FAMILIES`.
        level: its severity level.
        rng: randomness (distractor colours and places).
        goal_colors: colours distractors must not take (they would change the task).
    """
    value = check_level(family, level)
    scene = env.scene
    if family == "distractors" and value:
        colors = [c for c in COLORS if c not in goal_colors]
        for xy in _free_positions(scene, rng, int(value)):
            c = colors[int(rng.integers(len(colors)))]
            yaw = float(rng.uniform(0, np.pi / 2))
            scene.add_block((np.array([xy[0], xy[1], 0.0]), np.array([0, 0, np.sin(yaw / 2), np.cos(yaw / 2)])),
                            COLORS[c], c)
        scene.settle()
    elif family == "table_texture" and level:
        if value == "light-grey":
            appearance.set_table_color(scene, _GREY)
        elif value == "wood+white-background":
            appearance.set_table_color(scene, (0.55, 0.38, 0.22))
            appearance.set_background_color(scene, (1.0, 1.0, 1.0))
        else:
            appearance.set_table_checker(scene, 0.0625, _GREY)


def observe(env, family: str, level: int, rng: np.random.Generator, current: dict | None = None) -> dict:
    """The agent's observation of the env's current state under a perturbation.

    Args:
        env: the env (reset, possibly stepped).
        family: a family of :data:`FAMILIES`.
        level: its severity level.
        rng: randomness of the perturbation.
        current: the env's own observation of its current state, reused (not re-rendered) when the family does
            not change how the scene is rendered (pass None after :func:`apply_scene` changed the scene).

    Returns:
        ``{"colormap" (H, W, 3) uint8, "heightmap" (H, W) float32 metres, "instruction" str}``.
    """
    value = check_level(family, level)
    lighting = value if family == "lighting" else None
    cams = None
    if family == "camera_jitter" and value:
        # a translation of t metres comes with a rotation of 100 t degrees per Euler axis (1 cm with 1 deg)
        cams = appearance.jitter_cameras(env.scene.cameras, rng, value, float(np.radians(100 * value)))
    if lighting is None and cams is None:
        sim = env.scene.observe() if current is None else None
    else:
        sim = appearance.observe(env.scene, lighting=lighting, actual_cameras=cams)
    source = {"colormap": sim.colormap, "heightmap": sim.heightmap} if sim is not None else current
    obs = {"colormap": source["colormap"].copy(), "heightmap": source["heightmap"].copy(),
           "instruction": env.instruction}
    return perturb_observation(obs, family, level, rng)


def perturb_observation(obs: dict, family: str, level: int, rng: np.random.Generator) -> dict:
    """Apply an observation family (``depth_noise``, ``occlusion``) to a copy of ``obs``; others pass through.

    ``depth_noise`` adds N(0, sigma^2) metres to every heightmap pixel (clipped at 0, the table); ``occlusion``
    paints grey rectangles (side 10-25 % of the short side) over the colour map until the given share of its
    pixels is covered (the heightmap is kept: a flat occluder such as a sheet or a shadow).
    """
    value = check_level(family, level)
    out = dict(obs)
    if family == "depth_noise" and value:
        hm = np.asarray(obs["heightmap"], np.float32)
        out["heightmap"] = np.clip(hm + rng.normal(0, value, hm.shape), 0, None).astype(np.float32)
    elif family == "occlusion" and value:
        cm = np.array(obs["colormap"], copy=True)
        h, w = cm.shape[:2]
        mask = np.zeros((h, w), bool)
        while mask.mean() < value:
            side = int(rng.uniform(0.1, 0.25) * min(h, w))
            r, c = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            mask[r : r + side, c : c + side] = True
        cm[mask] = np.round(255 * np.array(_GREY)).astype(np.uint8)
        out["colormap"] = cm
    return out


@dataclass
class EpisodeOutcome:
    """One perturbed episode: seed, score (total reward in [0, 1]), success, steps run, novelty class."""

    seed: int
    total_reward: float
    success: bool
    steps: int
    novelty: str
    instruction: str


def goal_colors(info: dict) -> tuple[str, ...]:
    """Colour values among an env reset's ``goal_attributes``."""
    return tuple(a["value"] for a in info.get("goal_attributes", {}).values() if a.get("kind") == "color")


def run_policy(agent, task: str, family: str, level: int, episodes: int, split: str = "val", steps: int = 1,
               seed: int = 0, camera_scale: float | None = None, progress: Callable[[int], None] | None = None
               ) -> list[EpisodeOutcome]:
    """Score an agent on ``episodes`` seeded episodes under one perturbation (same seeds at every level).

    Args:
        agent: anything with ``select_action(observation, instruction) -> {"pick_pose", "place_pose"}``.
        task: the task (for ``unseen_attributes`` its colour variants are used).
        family: a family of :data:`FAMILIES`.
        level: its severity level.
        episodes: number of episodes (seeds ``split_seed(split, 0..episodes-1)``).
        split: ``"val"`` to choose settings, ``"test"`` to report once.
        steps: pick-and-places per episode at most (1: the first step only; the task's own budget if larger).
        seed: perturbation randomness (distractors, jitter, noise), combined with each episode seed.
        camera_scale: camera resolution relative to 480x640 (None: the scale the policy learned from,
            :func:`vlarm.policies.base.env_options_at_scale`).
        progress: optional callback after each episode (its index).

    Returns:
        One :class:`EpisodeOutcome` per episode.

    Raises:
        ValueError: unknown family/level/task, or ``episodes``/``steps`` < 1.
    """
    from vlarm.envs import make_env
    from vlarm.policies.base import agent_env_options, env_options_at_scale
    from vlarm.tasks import TaskError
    from vlarm.tasks.attributes import split_seed

    if episodes < 1 or steps < 1:
        raise ValueError(f"episodes and steps must be >= 1, got {episodes}, {steps}")
    check_level(family, level)
    env = make_env(task_for(task, family, level), split=split, render_terminal=False,
                   **env_options_at_scale(agent_env_options(agent), camera_scale))
    out = []
    try:
        for i in range(episodes):
            ep_seed = split_seed(split, i)
            rng = np.random.default_rng([seed, ep_seed, 7])
            current, info = env.reset(seed=ep_seed, options={"split": split})
            apply_scene(env, family, level, rng, goal_colors(info))
            if family in SCENE_FAMILIES and level:
                current = None   # the scene changed after the reset's observation
            total, done, n = 0.0, False, 0
            while not done and n < min(steps, env.task.max_steps):
                obs = observe(env, family, level, rng, current)
                try:
                    action = agent.select_action(obs, obs["instruction"])
                except TaskError:
                    break
                current, _, terminated, truncated, step_info = env.step(action)
                total, n, done = float(step_info["total_reward"]), n + 1, terminated or truncated
            out.append(EpisodeOutcome(ep_seed, total, total > 0.99, n, info.get("novelty", "none"),
                                      info["instruction"]))
            if progress is not None:
                progress(i)
    finally:
        env.close()
    return out


def vlm_crops(task: str, family: str, level: int, scenes: int, split: str = "val", seed: int = 0,
              crop_size: int = 48, camera_scale: float = 0.5, kinds: tuple[str, ...] = ("block", "bowl")
              ) -> tuple[np.ndarray, list[str], list[str]]:
    """Object crops of perturbed scenes for zero-shot classification, labelled ``"<colour> <kind>"``.

    Each scene is a task episode's layout (``split_seed(split, i)``) with the perturbation applied; every object of
    a kind in ``kinds`` gives one ``crop_size`` square crop of the colour map centred on its true position (so
    camera error and occlusion move or hide it, as they would for the robot).

    Returns:
        ``(images, labels, colours)``: ``(N, 3, S, S)`` float32 in [0, 1], N class names ``"red block"``, N
        colour names.
    """
    from vlarm.envs import make_env
    from vlarm.tasks.attributes import split_seed
    from vlarm.vlm.grounding import crop_centered
    from vlarm.vlm.sim_captions import fill_holes

    env = make_env(task_for(task, family, level), split=split, camera_scale=camera_scale, render_terminal=False)
    images, labels, colours = [], [], []
    try:
        for i in range(scenes):
            ep_seed = split_seed(split, i)
            rng = np.random.default_rng([seed, ep_seed, 11])
            current, info = env.reset(seed=ep_seed, options={"split": split})
            apply_scene(env, family, level, rng, goal_colors(info))
            obs = observe(env, family, level, rng, None if family in SCENE_FAMILIES and level else current)
            cmap = fill_holes(obs["colormap"])
            for body, o in env.scene.objects.items():
                if o.kind not in kinds or o.color not in COLORS:
                    continue
                pix = xyz_to_pixel(env.scene.pose(body)[0])
                crop = crop_centered(cmap, (int(pix[0]), int(pix[1])), crop_size)
                images.append(crop.transpose(2, 0, 1).astype(np.float32) / 255.0)
                labels.append(f"{o.color} {o.kind}")
                colours.append(o.color)
    finally:
        env.close()
    return (np.stack(images) if images else np.zeros((0, 3, crop_size, crop_size), np.float32)), labels, colours


def curve(family: str, outcomes_by_level: dict[int, list[float]], kind: str = "score") -> list[dict]:
    """Score vs severity rows with 95% intervals and the relative drop from the clean level (level 0).

    Args:
        family: the family (for labels).
        outcomes_by_level: level -> per-sample outcomes (total rewards in [0, 1] for ``kind="score"``; 0/1
            correctness for ``kind="accuracy"``).
        kind: ``"score"`` (bootstrap interval) or ``"accuracy"`` (Wilson interval).

    Returns:
        Rows ``{"family", "level", "severity", "n", "value", "ci", "relative_drop"}``; value in percent,
        relative drop in percent of the clean value (None when the clean value is 0 or missing).

    Raises:
        ValueError: an unknown kind.
    """
    from vlarm.stats import score_interval, wilson_interval

    if kind not in ("score", "accuracy"):
        raise ValueError(f"kind must be 'score' or 'accuracy', got {kind!r}")
    rows = []
    for level in sorted(outcomes_by_level):
        x = np.asarray(outcomes_by_level[level], dtype=np.float64)
        if len(x) == 0:
            continue
        ci = score_interval(x) if kind == "score" else wilson_interval(int(x.sum()), len(x))
        rows.append({"family": family, "level": level, "severity": severity_label(family, level), "n": len(x),
                     "value": 100 * float(x.mean()), "ci": [float(ci[0]), float(ci[1])]})
    clean = rows[0]["value"] if rows and rows[0]["level"] == 0 else None
    for r in rows:
        r["relative_drop"] = 100 * (clean - r["value"]) / clean if clean else None
    return rows


__all__ = ["FAMILIES", "SCENE_FAMILIES", "EpisodeOutcome", "apply_scene", "check_level", "curve", "goal_colors",
           "observe", "perturb_observation", "run_policy", "severity_label", "task_for", "vlm_crops"]
