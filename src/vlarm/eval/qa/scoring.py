"""Scoring a trained MIAVLM (or baseline) on a benchmark: one balanced POPE set per negative setting.

Metrics follow :mod:`vlarm.eval.qa.metrics` (HoOA from the MIAVLM paper; POPE's accuracy / precision / recall / F1 /
yes-ratio, Li et al. 2023), each with a 95% interval; answers come from :func:`vlarm.vlm.qa.inference.predict`.
"""

from __future__ import annotations

from vlarm.eval.qa.metrics import hooa_scores
from vlarm.vlm.qa.dataset import NEGATIVE_SETTINGS, QUESTION_TYPES, QABenchmark, check_split
from vlarm.vlm.qa.inference import benchmark_view_inputs, predict
from vlarm.vlm.qa.model import MIAVLM, QuestionFeaturizer, answer_text


def _score(records: list[dict], answers: dict[str, str], seed: int) -> dict | None:
    if not records:
        return None
    return hooa_scores([answers[r["id"]] for r in records], [r["label"] for r in records],
                       pairs=[r["pair"] for r in records], seed=seed)


def evaluate(model: MIAVLM, bench: QABenchmark, splits: tuple[str, ...] = ("test", "unseen"),
             seed: int = 0) -> dict:
    """Score a model on benchmark splits, one balanced set per POPE negative setting.

    Args:
        model: the model.
        bench: the benchmark.
        splits: splits to score (:data:`vlarm.vlm.qa.dataset.QA_SPLITS`).
        seed: bootstrap seed of the intervals.

    Returns:
        ``{split: {"settings": {setting: metrics}, "by_type": {setting: {type: metrics}}, "hidden_in_front":
        {setting: metrics}, "novel": {setting: metrics}}}`` with :func:`vlarm.eval.qa.metrics.hooa_scores` dicts;
        ``hidden_in_front`` keeps the pairs whose subject the front view does not show (what one view cannot answer),
        ``novel`` the pairs naming a value unseen in training (None where a subset is empty). Also ``"predictions"``:
        ``{record id: probability of yes}``.

    Raises:
        ValueError: an unknown split.
    """
    for split in splits:
        check_split(split)
    featurizer = QuestionFeaturizer(model.config)
    records = [r for r in bench.records if r["split"] in splits]
    probs = predict(model, featurizer, benchmark_view_inputs(model, bench), records)
    answers = {r["id"]: answer_text(p) for r, p in zip(records, probs, strict=True)}
    result: dict = {"predictions": {r["id"]: float(p) for r, p in zip(records, probs, strict=True)}}
    for split in splits:
        entry: dict = {"settings": {}, "by_type": {}, "hidden_in_front": {}, "novel": {}}
        for setting in NEGATIVE_SETTINGS:
            recs = bench.eval_set(split, setting)
            novel_pairs = {r["pair"] for r in recs if r["novel"]}
            entry["settings"][setting] = _score(recs, answers, seed)
            entry["by_type"][setting] = {t: _score([r for r in recs if r["type"] == t], answers, seed)
                                         for t in QUESTION_TYPES}
            entry["hidden_in_front"][setting] = _score([r for r in recs if 0 not in r["visible_views"]], answers,
                                                       seed)
            entry["novel"][setting] = _score([r for r in recs if r["pair"] in novel_pairs], answers, seed)
        result[split] = entry
    return result
