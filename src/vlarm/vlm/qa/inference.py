"""Answering, scoring and timing: a trained MIAVLM (or baseline) on the benchmark and on single scenes.

Scores follow :mod:`vlarm.vlm.qa.metrics` (HoOA from the MIAVLM paper; POPE's accuracy / precision / recall / F1 /
yes-ratio, Li et al. 2023), one balanced set per POPE negative setting, each with 95% intervals.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from vlarm.vlm.qa.benchmark import QABenchmark, check_split
from vlarm.vlm.qa.metrics import hooa_scores
from vlarm.vlm.qa.model import MIAVLM, QuestionFeaturizer, answer_text
from vlarm.vlm.qa.questions import NEGATIVE_SETTINGS, QUESTION_TYPES


@torch.no_grad()
def predict(model: MIAVLM, featurizer: QuestionFeaturizer, images: np.ndarray, records: list[dict],
            batch_scenes: int = 32) -> np.ndarray:
    """Probability of "yes" for every question record.

    Args:
        model: the model (put in eval mode here).
        featurizer: its question featurizer.
        images: ``(n_scenes, V, S, S, 3)`` uint8 views of every benchmark scene (all views; the model picks its own).
        records: question records (``scene`` and ``question`` fields).
        batch_scenes: scenes encoded at once.

    Returns:
        ``(len(records),)`` float64 probabilities in [0, 1], in record order.
    """
    model.eval()
    views = list(model.config.views)
    by_scene: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_scene.setdefault(int(r["scene"]), []).append(i)
    scenes = sorted(by_scene)
    out = np.zeros(len(records))
    for b in range(0, len(scenes), batch_scenes):
        chunk = scenes[b:b + batch_scenes]
        visual, _ = model.encode_views(torch.from_numpy(images[chunk][:, views]))
        idx = [i for s in chunk for i in by_scene[s]]
        where = torch.tensor([chunk.index(int(records[i]["scene"])) for i in idx])
        feats, mask = featurizer([records[i]["question"] for i in idx])
        out[idx] = torch.sigmoid(model.answer_logits(visual[where], feats, mask)).double().numpy()
    return out


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
        splits: splits to score (:data:`vlarm.vlm.qa.benchmark.QA_SPLITS`).
        seed: bootstrap seed of the intervals.

    Returns:
        ``{split: {"settings": {setting: metrics}, "by_type": {setting: {type: metrics}}, "hidden_in_front":
        {setting: metrics}, "novel": {setting: metrics}}}`` with :func:`vlarm.vlm.qa.metrics.hooa_scores` dicts;
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
    probs = predict(model, featurizer, bench.images(), records)
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


@torch.no_grad()
def ask(model: MIAVLM, images: np.ndarray, questions: list[str] | str,
        featurizer: QuestionFeaturizer | None = None) -> list[dict]:
    """Answer yes/no questions about one scene.

    Args:
        model: the model.
        images: ``(V, S, S, 3)`` uint8 views of the scene in benchmark order (front, left, right, sampled ...); the
            model reads its own ``config.views`` of them.
        questions: one question or a list.
        featurizer: a question featurizer to reuse (default: a new one).

    Returns:
        One ``{"question", "answer" ("Yes"/"No"), "p_yes", "view_weights"}`` per question (``view_weights``: MAP's
        weight of each view read, or None for other fusions).

    Raises:
        ValueError: the scene has fewer views than the model reads, or no question.
    """
    model.eval()
    questions = [questions] if isinstance(questions, str) else list(questions)
    views = list(model.config.views)
    if images.ndim != 4 or images.shape[0] <= max(views):
        raise ValueError(f"the model reads views {views}; got images of shape {tuple(images.shape)} "
                         "(expected (V, S, S, 3) with V > the largest view index)")
    featurizer = featurizer or QuestionFeaturizer(model.config)
    visual, weights = model.encode_views(torch.from_numpy(np.ascontiguousarray(images[views]))[None])
    feats, mask = featurizer(questions)
    probs = torch.sigmoid(model.answer_logits(visual.expand(len(questions), -1, -1), feats, mask)).tolist()
    return [{"question": q, "answer": answer_text(p), "p_yes": float(p),
             "view_weights": None if weights is None else [float(w) for w in weights[0]]}
            for q, p in zip(questions, probs, strict=True)]


def time_per_question(model: MIAVLM, images: np.ndarray, question: str, repeats: int = 30) -> dict:
    """Wall-clock seconds to answer one question about one scene, from uint8 views to the answer.

    Args:
        model: the model.
        images: ``(V, S, S, 3)`` uint8 views of one scene.
        question: the question.
        repeats: timed runs after one warm-up.

    Returns:
        ``{"median_s", "p90_s", "question_encoding_s", "views", "threads"}``: the median and 90th percentile of the
        whole answer with the question's features cached, and the time to featurize a new question (MiniLM or
        word ids) on its own.
    """
    featurizer = QuestionFeaturizer(model.config)
    ask(model, images, question, featurizer)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ask(model, images, question, featurizer)
        times.append(time.perf_counter() - t0)
    fresh = []
    for k in range(min(repeats, 10)):
        t0 = time.perf_counter()
        featurizer([f"{question} ({k})"])
        fresh.append(time.perf_counter() - t0)
    return {"median_s": float(np.median(times)), "p90_s": float(np.percentile(times, 90)),
            "question_encoding_s": float(np.median(fresh)), "views": len(model.config.views),
            "threads": torch.get_num_threads()}

