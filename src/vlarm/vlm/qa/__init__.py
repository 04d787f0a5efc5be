"""Attribute questions answered from many views: the MIAVLM model, its HoOA-style benchmark and POPE metrics.

Modules (imported on demand; the benchmark renders with the simulator):

* :mod:`~vlarm.vlm.qa.scenes` - what a benchmark scene holds and the views that see it;
* :mod:`~vlarm.vlm.qa.questions` - yes/no questions, their truth and POPE negatives (random / popular / adversarial);
* :mod:`~vlarm.vlm.qa.benchmark` - building the benchmark as files and reading it back;
* :mod:`~vlarm.vlm.qa.metrics` - HoOA, accuracy, precision, recall, F1, yes-ratio with 95% intervals;
* :mod:`~vlarm.vlm.qa.model` - MIAVLM (visual extractor, multihead sampler, MAP fusion) and its baselines;
* :mod:`~vlarm.vlm.qa.train` - training with or without negative instructions, checkpoints, resume;
* :mod:`~vlarm.vlm.qa.inference` - answers, scores and timing;
* :mod:`~vlarm.vlm.qa.commands` - what ``vlarm vlm qa build|train|eval|ask`` run.

Sources: the MIAVLM paper ("Mitigating Hallucinations on Object Attributes using Multiview Images and Negative
Instructions"; REFERENCE.md Sec. 5) and POPE (Li et al. 2023).
"""
