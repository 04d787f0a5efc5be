"""Trustworthiness of vlarm's VLMs and policies, measured (issue 13; Vu & Lai 2025).

* :mod:`~vlarm.trust.models` - the two interfaces every measurement takes: a VLM as an image classifier with its
  normalisation inside (pixel-unit budgets) and a pick-and-place policy as a classifier over heatmap cells;
* :mod:`~vlarm.trust.robustness` - perturbation families with severities (scene, renderer, observation);
* :mod:`~vlarm.trust.attacks` - FGSM, PGD and Square with ART, mode- and gradient-safe;
* :mod:`~vlarm.trust.training` - head training: plain, re-weighted, adversarial (ART), DP-SGD (Opacus);
* :mod:`~vlarm.trust.fairness` - fairlearn ``MetricFrame`` by group, disparities with intervals;
* :mod:`~vlarm.trust.privacy` - loss-threshold membership inference (AUC);
* :mod:`~vlarm.trust.safety` / :mod:`~vlarm.trust.redteam` - the instruction filter and its red-team set;
* :mod:`~vlarm.trust.scene_text` - text written into the scene against perception;
* :mod:`~vlarm.trust.report` - ``vlarm trust report``: all five in one Markdown report.

Heavy libraries (ART, fairlearn, Opacus, torch models) are imported where used, so ``refuse_if_unsafe`` stays cheap
for the CLI.
"""

from vlarm.trust.safety import UnsafeInstructionError, Verdict, check_instruction, refuse_if_unsafe

__all__ = ["UnsafeInstructionError", "Verdict", "check_instruction", "refuse_if_unsafe"]
