"""Attribute questions answered from many views: the MIAVLM model, its training and inference.

Modules (imported on demand; none needs the simulator or the task definitions, DESIGN: ``vlm`` imports ``text`` and
``vision`` only):

* :mod:`~vlarm.vlm.qa.dataset` - reading a benchmark directory (images, JSONL questions, splits, settings);
* :mod:`~vlarm.vlm.qa.model` - MIAVLM (visual extractor, multihead sampler, MAP fusion) and its baselines;
* :mod:`~vlarm.vlm.qa.train` - training with or without negative instructions, view dropout, checkpoints, resume;
* :mod:`~vlarm.vlm.qa.inference` - answers, probabilities and timing.

The benchmark itself (scenes rendered with the simulator, questions, POPE negatives), its metrics and scoring, and
the ``vlarm vlm qa`` commands live in :mod:`vlarm.eval.qa`.

Sources: the MIAVLM paper ("Mitigating Hallucinations on Object Attributes using Multiview Images and Negative
Instructions"; REFERENCE.md Sec. 5) and POPE (Li et al. 2023).
"""
