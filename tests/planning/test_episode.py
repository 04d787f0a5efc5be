"""Planned episodes in the simulator with a scripted planner and a stub perception (fast, no models)."""

from __future__ import annotations

import numpy as np
import pytest

from vlarm.planning.episode import OracleExecutor, PlanRunner, refusal_message
from vlarm.planning.instructions import On
from vlarm.planning.perception import Detection
from vlarm.planning.saycan import PlannerConfig, PlanStep
from vlarm.planning.skills import DONE_SKILL, Skill
from vlarm.tasks.saycan_tabletop import SceneSpec

SPEC = SceneSpec(("red", "blue"), ("green", "yellow"))


class NamesPerception:
    """Test stand-in for the VLM: reports the scene's object names (the real one reads the cameras)."""

    def __init__(self, names):
        self.names = names

    def detect(self, colormap, heightmap):
        assert colormap.ndim == 3 and heightmap.ndim == 2
        return [Detection(n, 0.9, {n: 0.9}, (0, 0), (0.5, 0.0), np.zeros(heightmap.shape, bool)) for n in self.names]


class ScriptedPlanner:
    def __init__(self, skills, max_steps=8):
        self.skills, self.config, self.contexts = list(skills), PlannerConfig(max_steps=max_steps), []

    def explain(self, scene, instruction):
        return ""

    def step(self, ctx):
        self.contexts.append(ctx)
        return PlanStep(self.skills[len(ctx.history)] if len(ctx.history) < len(self.skills) else DONE_SKILL)


@pytest.fixture
def runner_factory():
    made = []

    def make(skills, max_steps=8):
        runner = PlanRunner(ScriptedPlanner(skills, max_steps), NamesPerception(SPEC.names()), OracleExecutor(),
                            camera_scale=0.25)
        made.append(runner)
        return runner

    yield make
    for r in made:
        r.close()


def test_plan_is_executed_and_judged_on_the_final_state(runner_factory):
    runner = runner_factory([Skill("red block", "green bowl"), DONE_SKILL])
    check = On("red block", "green bowl")
    result = runner.run("put the red block in the green bowl", seed=10001, spec=SPEC, check=check)
    assert result.stop == "done" and result.plan == [Skill("red block", "green bowl").text, "done()"]
    assert result.success is True and result.steps[0].failure is None
    assert result.seen == SPEC.names()
    wrong = runner_factory([Skill("blue block", "green bowl"), DONE_SKILL])
    assert wrong.run("put the red block in the green bowl", 10001, SPEC, check).success is False


def test_step_limit_stops_the_loop(runner_factory):
    runner = runner_factory([Skill("red block", "middle"), Skill("red block", "left side")] * 5, max_steps=2)
    result = runner.run("keep moving the red block", 10001, SPEC)
    assert result.stop == "step limit" and len(result.plan) == 2


@pytest.mark.parametrize("instruction, expected", [
    ("", "the instruction is empty"),
    ("   ", "the instruction is empty"),
    ("put the purple block in the green bowl", "there is no purple block on the table"),
    ("put the red block in the pink bowl", "there is no pink bowl on the table"),
])
def test_bad_input_gets_a_plain_answer_and_done(runner_factory, instruction, expected):
    runner = runner_factory([Skill("red block", "green bowl")])
    result = runner.run(instruction, 10001, SPEC, check=On("red block", "green bowl"))
    assert result.stop == "refused" and expected in result.message
    assert result.plan == ["done()"] and result.success is False
    assert runner.planner.contexts == []      # the planner was never asked


def test_a_skill_on_an_absent_object_fails_without_crashing(runner_factory):
    runner = runner_factory([Skill("orange block", "green bowl"), DONE_SKILL])
    result = runner.run("put the block in the bowl", 10001, SPEC)
    assert result.stop == "done" and "cannot pick" in result.steps[0].failure


def test_refusal_message_names_what_is_seen():
    assert refusal_message("stack the white block on the red block", ["red block"]).startswith(
        "there is no white block on the table (the cameras see: red block)")
    assert refusal_message("stack the blocks", ["red block"]) == ""


@pytest.mark.parametrize("instruction, word, colour", [
    ("put the purpel block in the green bowl", "purpel", "purple"),
    ("put the red block in the gren bowl", "gren", "green"),
    ("stack the yelow blocks", "yelow", "yellow"),
])
def test_a_misspelt_colour_is_named_not_planned_past(instruction, word, colour):
    message = refusal_message(instruction, ["red block", "green bowl", "purple block", "yellow block"])
    assert f"'{word}' is not a colour (did you mean '{colour}'?)" in message and message.endswith("nothing to do")


def test_words_that_are_not_colours_are_left_alone():
    assert refusal_message("stack the blocks on the middle block", ["red block"]) == ""
    assert refusal_message("put the red block next to the bowl", ["red block"]) == ""
