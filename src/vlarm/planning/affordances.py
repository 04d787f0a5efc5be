"""Affordances: how feasible each skill is in the current state (SayCan's "can" term, Ahn et al. 2022, Sec. 3-4).

SayCan multiplies the language model's probability of a skill by the probability that the skill succeeds now.
Here that probability has two factors, as in the tabletop variant (REFERENCE.md Sec. 3) plus a learned value:

* :class:`DetectionAffordance` (perception): the pick block is seen on the table and the target is another seen
  object or a named place; the factor is the detector's confidence (:mod:`vlarm.planning.perception`, from the
  cameras). ``done()`` gets a fixed 0.2 (the tabletop variant's constant).
* :class:`PolicyValue` (value): the probability mass the low-level policy's own heatmaps put on the right places,
  ``P(pick pixel on the pick block) * P(place pixel on the target | that pick)``, from its softmax pick and place
  distributions (Transporter Sec. 3). High when the policy "knows" the skill in this scene, low when it would act
  elsewhere. One policy forward per skill, so the planner evaluates it lazily (:mod:`vlarm.planning.saycan`).
* :class:`OracleAffordance`: simulator ground truth (block exists and nothing is on it; target exists and is free).
  Only for the ablation that names it.
* :class:`ConstantAffordance`: 1 everywhere (the No-VF ablation: language model alone).

Every affordance is a callable ``(state, skills) -> (N,) float64`` probabilities in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vlarm.planning.perception import Detection
from vlarm.planning.skills import Skill
from vlarm.sim.heightmap import PIXEL_SIZE, WORKSPACE_BOUNDS, xyz_to_pixel
from vlarm.tasks.saycan_tabletop import PLACES

#: Affordance of ``done()`` (SayCan's tabletop variant, REFERENCE.md Sec. 3).
DONE_AFFORDANCE = 0.2
#: Radius of a named place's target region for the policy value, metres.
PLACE_REGION = 0.06


@dataclass
class PlanState:
    """What the affordances see at one planning step.

    Attributes:
        detections: objects seen on the table now (perception).
        observation: the current observation dict (``colormap``, ``heightmap``; cameras) or None.
        task: the simulator task (ground truth; only :class:`OracleAffordance` may read it) or None.
    """

    detections: list[Detection]
    observation: dict | None = None
    task: object | None = None

    def detection(self, name: str) -> Detection | None:
        """The detection named ``name``, or None."""
        return next((d for d in self.detections if d.name == name), None)


class Affordance(Protocol):
    """``(state, skills) -> (N,) float64`` probabilities that each skill can succeed now."""

    def __call__(self, state: PlanState, skills: Sequence[Skill]) -> np.ndarray: ...


class ConstantAffordance:
    """Every skill (``done()`` included) is equally feasible: the No-VF ablation."""

    name = "none"

    def __call__(self, state: PlanState, skills: Sequence[Skill]) -> np.ndarray:
        """``(N,)`` ones."""
        return np.ones(len(skills), dtype=np.float64)


class DetectionAffordance:
    """Perception affordance (module docstring): detection confidence of the pick block times that of the target
    (1 for a named place); 0 when either is not seen or the target is the pick block; ``done()``: 0.2."""

    name = "detection"

    def __call__(self, state: PlanState, skills: Sequence[Skill]) -> np.ndarray:
        """``(N,)`` float64 in [0, 1]."""
        out = np.zeros(len(skills), dtype=np.float64)
        for i, skill in enumerate(skills):
            if skill.is_done:
                out[i] = DONE_AFFORDANCE
                continue
            pick = state.detection(skill.pick)
            if pick is None or skill.place == skill.pick or not skill.pick.endswith(" block"):
                continue
            if skill.place in PLACES:
                out[i] = pick.confidence
            else:
                target = state.detection(skill.place)
                out[i] = pick.confidence * target.confidence if target is not None else 0.0
        return out


class OracleAffordance:
    """Ground-truth affordance (for the ablation only): the block exists with nothing on it, the target exists, is
    not the block and has nothing on it (a block target) ; ``done()``: 0.2."""

    name = "oracle"

    def __call__(self, state: PlanState, skills: Sequence[Skill]) -> np.ndarray:
        """``(N,)`` float64 in {0, 0.2, 1}.

        Raises:
            ValueError: when the state carries no simulator task.
        """
        if state.task is None:
            raise ValueError("the oracle affordance reads the simulator: the plan state has no task")
        positions = state.task.object_positions()
        covered = {a for a in positions if a.endswith(" block") and any(
            b != a and b.endswith(" block") and np.hypot(*(positions[b][:2] - positions[a][:2])) < 0.03
            and positions[b][2] > positions[a][2] + 0.02 for b in positions)}
        out = np.zeros(len(skills), dtype=np.float64)
        for i, skill in enumerate(skills):
            if skill.is_done:
                out[i] = DONE_AFFORDANCE
                continue
            ok = (skill.pick in positions and skill.pick.endswith(" block") and skill.pick not in covered
                  and skill.place != skill.pick and (skill.place in PLACES or skill.place in positions)
                  and skill.place not in covered)
            out[i] = float(ok)
        return out


class PolicyValue:
    """Value from the low-level policy's heatmaps (module docstring).

    Args:
        policy: a pick-and-place policy with ``select_action(observation, instruction, return_info=True)``
            (:class:`vlarm.policies.pick_place.PickPlacePolicy`).
    """

    name = "policy-value"

    def __init__(self, policy):
        self.policy = policy

    def value(self, state: PlanState, skill: Skill) -> float:
        """``P(pick on the block) * P(place on the target | pick)`` in [0, 1]; 1 for ``done()``; 0 when the block
        or target is not seen.

        Raises:
            ValueError: when the state has no observation.
        """
        if skill.is_done:
            return 1.0
        if state.observation is None:
            raise ValueError("the policy value needs the current observation")
        pick = state.detection(skill.pick)
        region = target_region(state, skill.place)
        if pick is None or region is None:
            return 0.0
        info = self.policy.select_action(state.observation, skill.text, return_info=True)["info"]
        p_pick = _mass(info["pick_logits"], pick.mask)
        place = info["place_logits"]                                  # (R, H, W)
        p_place = _mass(place, np.broadcast_to(region, place.shape))
        return float(p_pick * p_place)


def target_region(state: PlanState, name: str) -> np.ndarray | None:
    """``(H, W)`` bool heightmap pixels of a target: a seen object's proposal, or a disc of
    :data:`PLACE_REGION` metres around a named place; None when the object is not seen."""
    if name in PLACES:
        shape = np.asarray(state.observation["heightmap"]).shape
        rows, cols = np.indices(shape)
        centre = xyz_to_pixel(np.array([*PLACES[name], 0.0]), WORKSPACE_BOUNDS, PIXEL_SIZE)
        return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= (PLACE_REGION / PIXEL_SIZE) ** 2
    det = state.detection(name)
    return None if det is None else det.mask


def _mass(logits: np.ndarray, region: np.ndarray) -> float:
    """Softmax probability mass of ``logits`` (any shape) inside the bool ``region`` (same shape)."""
    x = np.asarray(logits, dtype=np.float64).reshape(-1)
    p = np.exp(x - x.max())
    p /= p.sum()
    return float(p[np.asarray(region).reshape(-1)].sum())


__all__ = ["DONE_AFFORDANCE", "Affordance", "ConstantAffordance", "DetectionAffordance", "OracleAffordance",
           "PlanState", "PolicyValue", "target_region"]
