"""SayCan planning (Ahn et al. 2022, arXiv 2204.01691): a language model proposes skills, affordances ground them in
what the table affords now, a learned policy executes them.

Modules: :mod:`.scorer` (batched LM log-probabilities of options with a shared KV cache), :mod:`.lm` (loading
Gemma-3-270M or any local causal LM), :mod:`.skills` (skills generated from the scene), :mod:`.perception` (objects
named by the VLM from the cameras), :mod:`.affordances` (detection, policy value, oracle, constant), :mod:`.saycan`
(the planner loop and the ablations), :mod:`.episode` (perceive-plan-execute episodes), :mod:`.instructions` (70
instructions in ten families with goal checkers), :mod:`.evaluate` (plan and execution success tables).
"""

from vlarm.planning.scorer import CausalLMScorer, Scorer, normalize_scores
from vlarm.planning.skills import DONE_SKILL, Skill, generate_skills

__all__ = ["DONE_SKILL", "CausalLMScorer", "Scorer", "Skill", "generate_skills", "normalize_scores"]
