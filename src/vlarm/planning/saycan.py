"""The SayCan planner loop (Ahn et al. 2022, Sec. 3, Algorithm 1) and the paper's ablations.

At every step each skill ``s`` gets ``p_LM(s) * p_affordance(s) * value(s)``: ``p_LM`` is the language model's
probability of the skill text after the few-shot prompt, the instruction and the steps so far (normalised over the
options), ``p_affordance`` the perception affordance and ``value`` the policy's own confidence
(:mod:`vlarm.planning.affordances`). The argmax is appended to the prompt and executed; the loop stops at ``done()``
or after ``max_steps``.

The value needs one policy forward per skill, so it is computed lazily, best bound first: ``p_LM * p_affordance``
bounds the combined score from above (value <= 1), and options are valued in decreasing bound until the best combined
score found is at least the next bound. The chosen skill is then the exact argmax (options never valued could not
have won); a cap on evaluations per step (``max_value_evals``) bounds the cost when the policy values everything low.

Ablations (SayCan Sec. 5.3): :class:`SayCanPlanner` with a constant affordance and no value (No-VF), with the oracle
affordance; :class:`GenerativePlanner` (the LM writes the next step, mapped to the nearest skill by sentence
embedding); :class:`SentenceMatchPlanner` (BC-USE style, no LM: the skill nearest to the instruction, then done).

An optional chain of thought (SayCan Sec. 5.4): with ``explain=True`` the LM first writes an ``# explanation:`` line
for the instruction (greedy), which stays in the prompt for every step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vlarm.planning.affordances import Affordance, ConstantAffordance, PlanState, PolicyValue
from vlarm.planning.skills import DONE_SKILL, Skill
from vlarm.tasks.attributes import COLORS
from vlarm.tasks.language import COLOR_HINT, COLOR_WORDS, Slot

#: Few-shot examples of the prompt: (scene line, instruction, explanation, steps). None of them is in the evaluation
#: instruction set (:mod:`vlarm.planning.instructions`). Six, so that the prompt of an episode stays under Gemma-3's
#: 512-token sliding window and the scorer's tree strategy applies (:mod:`vlarm.planning.scorer`).
EXAMPLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("objects = [blue block, green block, orange block, yellow bowl, blue bowl, green bowl]",
     "put every block in the bowl of its own color", "the blue and green blocks have bowls of their color.",
     ("pick the blue block and place it on the blue bowl", "pick the green block and place it on the green bowl")),
    ("objects = [red block, green block, purple block, orange block, yellow bowl, red bowl]",
     "make a tower of the green, red and purple blocks", "green at the bottom, then red, then purple.",
     ("pick the red block and place it on the green block", "pick the purple block and place it on the red block")),
    ("objects = [yellow block, orange block, blue block, red bowl, blue bowl]",
     "move all the blocks to the bottom right corner", "the yellow, orange and blue blocks all go to the corner.",
     ("pick the yellow block and place it on the bottom right corner",
      "pick the orange block and place it on the bottom right corner",
      "pick the blue block and place it on the bottom right corner")),
    ("objects = [green block, red block, yellow block, purple bowl, orange bowl]; green block in orange bowl",
     "move the block in the orange bowl to the middle", "the green block is the one in the orange bowl.",
     ("pick the green block and place it on the middle",)),
    ("objects = [purple block, blue block, orange block, green bowl, yellow bowl]",
     "put all the blocks but the blue one in the yellow bowl", "every block except blue: purple and orange.",
     ("pick the purple block and place it on the yellow bowl",
      "pick the orange block and place it on the yellow bowl")),
    ("objects = [red block, blue block, green block, yellow bowl, green bowl]",
     "put two blocks in the yellow bowl", "two blocks, any two: red and blue.",
     ("pick the red block and place it on the yellow bowl", "pick the blue block and place it on the yellow bowl")),
)
STEP_DONE = "done()"


def format_example(scene: str, instruction: str, steps: Sequence[str], explanation: str | None = None) -> str:
    """One prompt block: the scene line, ``# <instruction>``, optionally ``# explanation: ...``, the steps (one a
    line), each line ending in a newline."""
    lines = [scene, f"# {instruction}"]
    if explanation is not None:
        lines.append(f"# explanation: {explanation}")
    return "\n".join([*lines, *steps]) + "\n"


def prompt_header(explain: bool = False) -> str:
    """The few-shot part of the prompt (each example closed by ``done()`` and a blank line)."""
    return "".join(format_example(s, i, [*steps, STEP_DONE], e if explain else None) + "\n"
                   for s, i, e, steps in EXAMPLES)


@dataclass
class PlannerConfig:
    """Planner settings.

    Attributes:
        max_steps: skills executed at most before the loop stops (``done()`` not counted).
        explain: write an ``# explanation:`` line before the first step (chain of thought).
        top_k: options shown per step in reports.
        refuse_absent: refuse instructions naming a "<colour> block|bowl" the cameras do not see
            (:func:`absent_references`), answering ``done()`` at once.
        max_value_evals: policy-value evaluations per step at most (the search of the module docstring stops
            there and takes the best valued option; it is exact when it stops earlier).
    """

    max_steps: int = 8
    explain: bool = False
    top_k: int = 5
    refuse_absent: bool = True
    max_value_evals: int = 6


@dataclass
class OptionScore:
    """Scores of one option at one step (probabilities in [0, 1]; value None when never computed, see the module
    docstring)."""

    skill: Skill
    lm: float
    affordance: float
    value: float | None
    combined: float


@dataclass
class PlanStep:
    """One planner decision: the chosen skill, the top options, and the text the LM wrote (generative/explanation)."""

    skill: Skill
    options: list[OptionScore] = field(default_factory=list)
    generated: str = ""


@dataclass
class PlanContext:
    """What a planner knows at a step: the instruction, the scene line, the steps so far, the skills, the state."""

    instruction: str
    scene: str
    history: list[Skill]
    skills: list[Skill]
    state: PlanState
    explanation: str | None = None


_REFERENCE = re.compile(r"\b(" + "|".join(sorted(COLORS, key=len, reverse=True)) + r"|grey)\s+(block|bowl)s?\b")


def absent_references(instruction: str, seen: Sequence[str]) -> list[str]:
    """Objects the instruction names (``"<colour> block"`` / ``"<colour> bowl"``, any case, plural too) that are
    not among the ``seen`` object names, in order of appearance, without duplicates."""
    seen = set(seen)
    out = []
    for color, kind in _REFERENCE.findall(instruction.lower()):
        name = f"{'gray' if color == 'grey' else color} {kind}"
        if name not in seen and name not in out:
            out.append(name)
    return out


_NOUN_PHRASE = re.compile(r"\b([a-z]+)\s+(?:block|bowl)s?\b")


#: The grammars' colour slot: its ``suggest`` is the tasks' own "did you mean" (and never "corrects" a known word).
_COLOUR_SLOT = Slot("colour", COLOR_WORDS, COLOR_HINT)


def misspelt_colours(instruction: str) -> list[tuple[str, str]]:
    """``(word, colour)`` for each word before "block(s)" / "bowl(s)" that is not a known word but is spelt like a
    colour (:meth:`vlarm.tasks.language.Slot.suggest`, e.g. ``("purpel", "purple")``): a typo the planner must not
    silently read past."""
    out = []
    for word in _NOUN_PHRASE.findall(instruction.lower()):
        guess = _COLOUR_SLOT.suggest(word)
        if guess is not None and (word, guess) not in out:
            out.append((word, guess))
    return out


def _softmax(log_scores: np.ndarray) -> np.ndarray:
    x = np.asarray(log_scores, dtype=np.float64)
    p = np.exp(x - x.max())
    return p / p.sum()


class SayCanPlanner:
    """SayCan (module docstring): ``argmax p_LM * p_affordance * value``.

    Args:
        scorer: a :class:`vlarm.planning.scorer.Scorer` (e.g. :class:`~vlarm.planning.scorer.CausalLMScorer`).
        affordance: an :class:`~vlarm.planning.affordances.Affordance` (detection, oracle or constant).
        value: an optional :class:`~vlarm.planning.affordances.PolicyValue`.
        config: :class:`PlannerConfig`.
        name: label for reports.
    """

    def __init__(self, scorer, affordance: Affordance, value: PolicyValue | None = None,
                 config: PlannerConfig | None = None, name: str = "saycan"):
        self.scorer, self.affordance, self.value = scorer, affordance, value
        self.config = config or PlannerConfig()
        self.name = name
        self.header = prompt_header(self.config.explain)
        if hasattr(scorer, "pin_prefix"):
            scorer.pin_prefix(self.header)

    def prompt(self, ctx: PlanContext) -> str:
        """The prompt for the next step: few-shot header, scene, instruction, explanation, steps so far."""
        return self.header + format_example(ctx.scene, ctx.instruction, [s.text for s in ctx.history],
                                            ctx.explanation if self.config.explain else None)

    def explain(self, scene: str, instruction: str) -> str:
        """The LM's explanation line for an instruction (greedy; ``""`` when the scorer cannot generate)."""
        if not hasattr(self.scorer, "generate"):
            return ""
        text = self.header + f"{scene}\n# {instruction}\n# explanation:"
        return self.scorer.generate(text, max_new_tokens=32).strip()

    def step(self, ctx: PlanContext) -> PlanStep:
        """Score every skill and choose one (module docstring)."""
        skills = ctx.skills
        p_lm = _softmax(self.scorer.score(self.prompt(ctx), [s.text for s in skills]))
        aff = np.clip(self.affordance(ctx.state, skills), 0.0, 1.0)
        bound = p_lm * aff
        values: dict[int, float] = {}
        if self.value is None:
            combined = bound.copy()
        else:
            combined = np.full(len(skills), -1.0)
            best = -1.0
            for n, i in enumerate(np.argsort(-bound, kind="stable")):
                if (bound[i] <= best and best >= 0) or n >= self.config.max_value_evals:
                    break
                values[i] = float(self.value.value(ctx.state, skills[i])) if bound[i] > 0 else 0.0
                combined[i] = bound[i] * values[i]
                best = max(best, combined[i])
        choice = int(np.argmax(combined))
        order = np.argsort(-combined, kind="stable")   # options never valued (-1) last
        shown = [int(i) for i in order[: self.config.top_k]]
        if choice not in shown:
            shown = [choice, *shown[:-1]]
        options = [OptionScore(skills[i], float(p_lm[i]), float(aff[i]), values.get(i), max(float(combined[i]), 0.0))
                   for i in shown]
        return PlanStep(skills[choice], options)


class GenerativePlanner:
    """SayCan's "Generative" ablation: the LM writes the next step greedily, and the skill whose sentence embedding
    is nearest (cosine) is taken; no affordance.

    Args:
        scorer: a scorer with ``generate`` (:class:`~vlarm.planning.scorer.CausalLMScorer`).
        encoder: a sentence encoder with ``encode(list[str]) -> (N, D)`` (MiniLM, :mod:`vlarm.text`).
        config: :class:`PlannerConfig`.
    """

    name = "generative"

    def __init__(self, scorer, encoder, config: PlannerConfig | None = None):
        self.scorer, self.encoder = scorer, encoder
        self.config = config or PlannerConfig()
        self._planner = SayCanPlanner(scorer, ConstantAffordance(), config=self.config)
        self.header = self._planner.header

    def prompt(self, ctx: PlanContext) -> str:
        """Same prompt as :class:`SayCanPlanner`."""
        return self._planner.prompt(ctx)

    def explain(self, scene: str, instruction: str) -> str:
        """As :meth:`SayCanPlanner.explain`."""
        return self._planner.explain(scene, instruction)

    def step(self, ctx: PlanContext) -> PlanStep:
        """Generate a line, take the nearest skill."""
        text = self.scorer.generate(self.prompt(ctx), max_new_tokens=24).strip()
        sims = _cosines(self.encoder, text or STEP_DONE, [s.text for s in ctx.skills])
        choice = int(np.argmax(sims))
        order = np.argsort(-sims, kind="stable")[: self.config.top_k]
        options = [OptionScore(ctx.skills[i], float(sims[i]), 1.0, None, float(sims[i])) for i in order]
        return PlanStep(ctx.skills[choice], options, generated=text)


class SentenceMatchPlanner:
    """BC-USE-style ablation (SayCan Sec. 5.3): no language model. The first step is the skill whose sentence
    embedding is nearest the instruction's (times the affordance); the second is ``done()``: one skill, no plan.

    Args:
        encoder: a sentence encoder with ``encode(list[str]) -> (N, D)``.
        affordance: an affordance (default: constant).
        config: :class:`PlannerConfig`.
    """

    name = "bc-use"

    def __init__(self, encoder, affordance: Affordance | None = None, config: PlannerConfig | None = None):
        self.encoder = encoder
        self.affordance = affordance or ConstantAffordance()
        self.config = config or PlannerConfig()

    def explain(self, scene: str, instruction: str) -> str:
        """No language model, no explanation."""
        return ""

    def step(self, ctx: PlanContext) -> PlanStep:
        """Nearest skill on the first step, ``done()`` after."""
        if ctx.history:
            return PlanStep(DONE_SKILL)
        candidates = [s for s in ctx.skills if not s.is_done]
        if not candidates:
            return PlanStep(DONE_SKILL)
        sims = _cosines(self.encoder, ctx.instruction, [s.text for s in candidates])
        score = np.clip(sims, 0.0, 1.0) * self.affordance(ctx.state, candidates)
        choice = int(np.argmax(score))
        order = np.argsort(-score, kind="stable")[: self.config.top_k]
        options = [OptionScore(candidates[i], float(sims[i]), 1.0, None, float(score[i])) for i in order]
        return PlanStep(candidates[choice], options)


def _cosines(encoder, query: str, texts: Sequence[str]) -> np.ndarray:
    emb = np.asarray(encoder.encode([query, *texts]), dtype=np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
    return emb[1:] @ emb[0]


__all__ = ["EXAMPLES", "GenerativePlanner", "OptionScore", "PlanContext", "PlanStep", "PlannerConfig",
           "SayCanPlanner", "SentenceMatchPlanner", "absent_references", "format_example", "prompt_header"]
