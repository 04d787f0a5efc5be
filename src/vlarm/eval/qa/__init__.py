"""The HoOA-style attribute-question benchmark of MIAVLM (:mod:`vlarm.vlm.qa`): built from the simulator, scored
with POPE's metrics.

Modules (imported on demand; building renders with the simulator):

* :mod:`~vlarm.eval.qa.scenes` - what a benchmark scene holds (objects, painted face, occluding wall) and its views;
* :mod:`~vlarm.eval.qa.questions` - yes/no questions, their truth and POPE negatives (random / popular / adversarial);
* :mod:`~vlarm.eval.qa.benchmark` - building the benchmark as files (read back by :mod:`vlarm.vlm.qa.dataset`);
* :mod:`~vlarm.eval.qa.metrics` - HoOA, accuracy, precision, recall, F1, yes-ratio with 95% intervals;
* :mod:`~vlarm.eval.qa.scoring` - a trained model scored per split and POPE setting;
* :mod:`~vlarm.eval.qa.commands` - what ``vlarm vlm qa build|train|eval|ask`` run.

Sources: the MIAVLM paper ("Mitigating Hallucinations on Object Attributes using Multiview Images and Negative
Instructions"; REFERENCE.md Sec. 5) and POPE (Li et al. 2023).
"""
