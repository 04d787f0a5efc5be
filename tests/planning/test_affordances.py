"""Affordances: detection, the policy value from heatmaps (stub policy), the simulator oracle."""

from __future__ import annotations

import numpy as np
import pytest

from vlarm.planning.affordances import (
    DONE_AFFORDANCE,
    DetectionAffordance,
    OracleAffordance,
    PlanState,
    PolicyValue,
    target_region,
)
from vlarm.planning.perception import Detection
from vlarm.planning.skills import DONE_SKILL, Skill
from vlarm.sim.heightmap import PIXEL_SIZE, WORKSPACE_BOUNDS, xyz_to_pixel
from vlarm.tasks.saycan_tabletop import PLACES

H, W = 320, 160


def _det(name, rows, cols, conf=0.8):
    mask = np.zeros((H, W), bool)
    mask[rows, cols] = True
    return Detection(name, conf, {name: conf}, (0, 0), (0.5, 0.0), mask)


class HeatmapPolicy:
    """Puts a fixed share of its pick and place probability on given pixels (logits built to give that mass)."""

    def __init__(self, pick_pixels, place_pixels, share=0.9):
        self.pick, self.place, self.share = pick_pixels, place_pixels, share

    def _logits(self, shape, region):
        inside = region.sum()
        outside = region.size - inside
        logits = np.zeros(shape)
        logits[region] = np.log(self.share / inside) - np.log((1 - self.share) / outside)
        return logits

    def select_action(self, observation, instruction=None, return_info=False):
        pick = self._logits((H, W), self.pick)
        place_region = np.broadcast_to(self.place, (4, H, W))
        return {"info": {"pick_logits": pick, "place_logits": self._logits((4, H, W), place_region)}}


def test_detection_affordance():
    state = PlanState([_det("red block", slice(0, 5), slice(0, 5), 0.9), _det("green bowl", slice(50, 60), slice(0, 9),
                                                                               0.5)])
    skills = [Skill("red block", "green bowl"), Skill("red block", "middle"), Skill("blue block", "green bowl"),
              Skill("red block", "blue bowl"), DONE_SKILL]
    np.testing.assert_allclose(DetectionAffordance()(state, skills), [0.45, 0.9, 0.0, 0.0, DONE_AFFORDANCE])


def test_policy_value_is_the_heatmap_mass_on_block_and_target():
    block = _det("red block", slice(10, 20), slice(10, 20))
    bowl = _det("green bowl", slice(100, 130), slice(40, 70))
    state = PlanState([block, bowl], observation={"heightmap": np.zeros((H, W), np.float32)})
    right = PolicyValue(HeatmapPolicy(block.mask, bowl.mask, share=0.9))
    assert right.value(state, Skill("red block", "green bowl")) == pytest.approx(0.81, abs=1e-6)
    wrong = PolicyValue(HeatmapPolicy(bowl.mask, block.mask, share=0.9))
    assert wrong.value(state, Skill("red block", "green bowl")) < 0.02
    assert right.value(state, DONE_SKILL) == 1.0
    assert right.value(state, Skill("blue block", "green bowl")) == 0.0   # not seen


def test_place_region_is_a_disc_around_the_named_place():
    state = PlanState([], observation={"heightmap": np.zeros((H, W), np.float32)})
    region = target_region(state, "top left corner")
    centre = xyz_to_pixel(np.array([*PLACES["top left corner"], 0.0]), WORKSPACE_BOUNDS, PIXEL_SIZE)
    assert region[tuple(centre)] and region.sum() > 1000
    assert target_region(state, "purple bowl") is None


def test_oracle_reads_the_simulator_and_refuses_without_it():
    class FakeTask:
        def object_positions(self):
            return {"red block": np.array([0.5, 0.0, 0.02]), "blue block": np.array([0.5, 0.0, 0.06]),
                    "green bowl": np.array([0.4, 0.2, 0.0])}

    state = PlanState([], task=FakeTask())
    skills = [Skill("red block", "green bowl"), Skill("blue block", "green bowl"), Skill("blue block", "red block"),
              Skill("blue block", "middle"), DONE_SKILL]
    # the red block is under the blue one: it cannot be picked, nor stacked on
    np.testing.assert_allclose(OracleAffordance()(state, skills), [0.0, 1.0, 0.0, 1.0, DONE_AFFORDANCE])
    with pytest.raises(ValueError, match="reads the simulator"):
        OracleAffordance()(PlanState([]), skills)
