"""The planner loop with stub scorers, affordances and values (no language model, no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from vlarm.planning.affordances import (
    DONE_AFFORDANCE,
    ConstantAffordance,
    DetectionAffordance,
    PlanState,
)
from vlarm.planning.perception import Detection
from vlarm.planning.saycan import (
    GenerativePlanner,
    PlanContext,
    PlannerConfig,
    SayCanPlanner,
    SentenceMatchPlanner,
    absent_references,
    prompt_header,
)
from vlarm.planning.skills import DONE_SKILL, Skill, generate_skills


class TableScorer:
    """Log-probabilities looked up by option text (default -20); records the prompts it saw."""

    def __init__(self, table: dict[str, float]):
        self.table, self.prompts = table, []

    def score(self, prompt, options):
        self.prompts.append(prompt)
        return np.array([self.table.get(o, -20.0) for o in options])


class CountingValue:
    """A value function with fixed values per skill text that counts its calls."""

    def __init__(self, values: dict[str, float], default: float = 1.0):
        self.values, self.default, self.calls = values, default, []

    def value(self, state, skill):
        self.calls.append(skill.text)
        return self.values.get(skill.text, self.default)


def _det(name, conf=0.9):
    return Detection(name, conf, {name: conf}, (0, 0), (0.5, 0.0), np.zeros((4, 4), bool))


def _ctx(objects, history=(), instruction="put the red block in the green bowl"):
    state = PlanState([_det(o) for o in objects])
    return PlanContext(instruction, "objects = [...]", list(history), generate_skills(objects), state)


RED_TO_GREEN = "pick the red block and place it on the green bowl"
BLUE_TO_GREEN = "pick the blue block and place it on the green bowl"


def test_affordance_vetoes_what_the_language_model_prefers():
    scorer = TableScorer({BLUE_TO_GREEN: -0.1, RED_TO_GREEN: -2.0})
    ctx = _ctx(["red block", "green bowl"])               # no blue block on the table: not even a skill
    ctx.skills.append(Skill("blue block", "green bowl"))  # ... unless the scene list were wrong
    step = SayCanPlanner(scorer, DetectionAffordance()).step(ctx)
    assert step.skill.text == RED_TO_GREEN
    no_vf = SayCanPlanner(scorer, ConstantAffordance()).step(ctx)
    assert no_vf.skill.text == BLUE_TO_GREEN


def test_combined_is_lm_probability_times_affordance_and_done_gets_its_constant():
    scorer = TableScorer({RED_TO_GREEN: -1.0, "done()": -1.0})
    ctx = _ctx(["red block", "green bowl"])
    step = SayCanPlanner(scorer, DetectionAffordance(), config=PlannerConfig(top_k=100)).step(ctx)
    by_text = {o.skill.text: o for o in step.options}
    assert by_text["done()"].affordance == pytest.approx(DONE_AFFORDANCE)
    assert by_text[RED_TO_GREEN].affordance == pytest.approx(0.9 * 0.9)
    for o in step.options:
        assert o.combined == pytest.approx(o.lm * o.affordance)
    assert sum(o.lm for o in step.options) == pytest.approx(1.0)      # LM probabilities normalised over options
    assert step.skill.text == RED_TO_GREEN


def test_lazy_value_search_gives_the_exact_argmax_with_few_evaluations():
    objects = ["red block", "blue block", "green bowl", "yellow bowl"]
    rng = np.random.default_rng(0)
    for trial in range(5):
        skills = generate_skills(objects)
        table = {s.text: float(rng.normal(0, 2)) for s in skills}
        values = {s.text: float(rng.uniform(0, 1)) for s in skills}
        ctx = _ctx(objects)
        aff = DetectionAffordance()(ctx.state, ctx.skills)
        p = np.exp(np.array([table[s.text] for s in skills]))
        p /= p.sum()
        brute = skills[int(np.argmax(p * aff * np.array([1.0 if s.is_done else values[s.text] for s in skills])))]
        value = CountingValue(values)
        step = SayCanPlanner(TableScorer(table), DetectionAffordance(), value,
                             PlannerConfig(max_value_evals=len(skills))).step(ctx)
        assert step.skill == brute, trial
        assert len(value.calls) < len(skills)


def test_value_turns_the_choice_to_what_the_policy_can_do():
    scorer = TableScorer({RED_TO_GREEN: -0.5, BLUE_TO_GREEN: -0.7})
    value = CountingValue({RED_TO_GREEN: 0.05, BLUE_TO_GREEN: 0.9})
    step = SayCanPlanner(scorer, DetectionAffordance(), value).step(_ctx(["red block", "blue block", "green bowl"]))
    assert step.skill.text == BLUE_TO_GREEN
    assert {o.skill.text: o.value for o in step.options}[BLUE_TO_GREEN] == pytest.approx(0.9)


def test_prompt_carries_the_scene_instruction_and_steps_so_far():
    scorer = TableScorer({})
    planner = SayCanPlanner(scorer, ConstantAffordance())
    ctx = _ctx(["red block", "green bowl"], history=[Skill("red block", "green bowl")])
    planner.step(ctx)
    prompt = scorer.prompts[-1]
    assert prompt.startswith(prompt_header())
    assert prompt.endswith("objects = [...]\n# put the red block in the green bowl\n" + RED_TO_GREEN + "\n")
    explained = SayCanPlanner(scorer, ConstantAffordance(), config=PlannerConfig(explain=True))
    ctx.explanation = "red goes to green."
    assert "# explanation: red goes to green.\n" + RED_TO_GREEN in explained.prompt(ctx)
    assert "# explanation:" in prompt_header(explain=True) and "# explanation:" not in prompt_header()


def test_absent_references():
    seen = ["red block", "green bowl", "gray block"]
    assert absent_references("put the purple block in the green bowl", seen) == ["purple block"]
    assert absent_references("Put the RED blocks in the Pink Bowls.", seen) == ["pink bowl"]
    assert absent_references("move the grey block to the middle", seen) == []
    assert absent_references("stack everything", seen) == []


class StubGenerator(TableScorer):
    def __init__(self, text):
        super().__init__({})
        self.text = text

    def generate(self, prompt, max_new_tokens=24, stop="\n"):
        return self.text


class BagOfWords:
    """A sentence 'encoder': word counts over a fixed vocabulary (cosine = word overlap)."""

    def encode(self, texts):
        vocab = sorted({w for t in ["pick the red blue block and place it on green bowl done()"] for w in t.split()})
        return np.array([[t.split().count(w) + 1e-3 for w in vocab] for t in texts], dtype=float)


def test_generative_takes_the_skill_nearest_the_generated_text():
    step = GenerativePlanner(StubGenerator("pick the blue block and place it on the green bowl"), BagOfWords()) \
        .step(_ctx(["red block", "blue block", "green bowl"]))
    assert step.skill.text == BLUE_TO_GREEN and step.generated.startswith("pick the blue")


def test_sentence_match_does_one_step_then_done():
    planner = SentenceMatchPlanner(BagOfWords(), DetectionAffordance())
    first = planner.step(_ctx(["red block", "green bowl"], instruction="put the red block on the green bowl"))
    assert first.skill.text == RED_TO_GREEN
    assert planner.step(_ctx(["red block", "green bowl"], history=[first.skill])).skill == DONE_SKILL
