"""Yes/no hallucination metrics: HoOA (MIAVLM) and POPE's accuracy / precision / recall / F1 / yes-ratio.

* HoOA (MIAVLM paper, "Benchmark" section; REFERENCE.md Sec. 5): the mean of the accuracy on positive questions
  (answer "yes") and on negative questions (answer "no"), i.e. binary balanced accuracy.
* POPE (Li et al. 2023, "Evaluating Object Hallucination in Large Vision-Language Models", Sec. 3): accuracy,
  precision, recall and F1 with "yes" as the positive class, and the yes-ratio (share of answers that are "yes").

Free-text answers are parsed by :func:`parse_answer` ("Yes, it is." -> yes, "No" / "not" -> no). An answer that
says neither is *unparseable*: it counts as wrong for its question (never as a yes nor a no) and is counted
(``unparseable`` in the result), so a model cannot gain by answering nonsense. Scoring refuses predictions and labels
of different lengths rather than truncating to the shorter one.

Every proportion carries a 95% Wilson interval (:func:`vlarm.stats.wilson_interval`); HoOA's interval is a
percentile bootstrap over positive/negative *pairs* (:func:`vlarm.stats.score_interval` over the pair means)
when pair ids are given, else over items resampled within each class; F1 is bootstrapped the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: Canonical answers.
YES, NO = "yes", "no"
#: Words that open an affirmative answer.
YES_WORDS = frozenset({"yes", "yeah", "yep", "yup", "true", "correct", "affirmative", "certainly"})
#: Words that make an answer negative wherever they appear (POPE: "No" or "not" -> no).
NO_WORDS = frozenset({"no", "not", "nope", "false", "incorrect", "negative", "never", "none", "isn", "doesn",
                      "aren", "don", "cannot", "can't", "isn't", "doesn't", "aren't", "don't", "wrong"})
#: Bootstrap resamples for the HoOA (unpaired) and F1 intervals.
BOOTSTRAP_RESAMPLES = 2000

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def parse_answer(answer: object) -> str | None:
    """Read a yes/no answer.

    Args:
        answer: a string ("Yes, it is.", "no", "It is not red."), a bool, or a 0/1 integer.

    Returns:
        ``"yes"``, ``"no"``, or None when the answer says neither (empty, "maybe", "The block is red."). The first
        word decides when it is a yes or no word; otherwise any negation word (:data:`NO_WORDS`) anywhere means no
        (POPE), else any yes word means yes.

    Raises:
        TypeError: ``answer`` is not a string, bool or int (e.g. None or a float), naming its type.
    """
    if isinstance(answer, bool):
        return YES if answer else NO
    if isinstance(answer, (int, np.integer)):
        if int(answer) in (0, 1):
            return YES if int(answer) == 1 else NO
        return None
    if not isinstance(answer, str):
        raise TypeError(f"an answer is a string, bool or 0/1 int, got {type(answer).__name__}: {answer!r}")
    words = _WORD.findall(answer.lower().replace("\u2019", "'"))
    if not words:
        return None
    if words[0] in YES_WORDS:
        return YES
    if words[0] in NO_WORDS:
        return NO
    if any(w in NO_WORDS for w in words):
        return NO
    if any(w in YES_WORDS for w in words):
        return YES
    return None


def _labels(labels: Sequence[object]) -> np.ndarray:
    """Labels -> bool array (True = yes); every label must parse."""
    out = []
    for i, label in enumerate(labels):
        parsed = parse_answer(label)
        if parsed is None:
            raise ValueError(f"label {i} ({label!r}) is not a yes/no answer; labels are 'yes'/'no', True/False or 1/0")
        out.append(parsed == YES)
    return np.asarray(out, dtype=bool)


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _rate(k: int, n: int) -> dict:
    """``{"value", "ci", "n"}`` of a proportion k/n in [0, 1] with its Wilson interval (None values when n = 0)."""
    from vlarm.stats import wilson_interval

    if n == 0:
        return {"value": None, "ci": None, "n": 0}
    low, high = wilson_interval(int(k), int(n))
    return {"value": k / n, "ci": [low / 100, high / 100], "n": int(n)}


def hooa_scores(predictions: Sequence[object], labels: Sequence[object], pairs: Sequence[object] | None = None,
                seed: int = 0) -> dict:
    """Score yes/no answers against labels: HoOA, accuracy, precision, recall, F1 and yes-ratio.

    Args:
        predictions: N answers (strings parsed by :func:`parse_answer`, bools, or 0/1).
        labels: N ground-truth answers (``"yes"``/``"no"``, bools or 0/1).
        pairs: optional N pair ids (a positive and its negative share one id, MIAVLM/POPE pairing); with them the
            HoOA and F1 intervals resample pairs, otherwise items within each class.
        seed: seed of the bootstrap resampling.

    Returns:
        A dict of metrics in [0, 1], each ``{"value", "ci": [low, high], "n"}`` (``value``/``ci`` None when undefined,
        e.g. precision with no "yes" answer): ``hooa``, ``accuracy``, ``positive_accuracy``, ``negative_accuracy``,
        ``precision``, ``recall``, ``f1``, ``yes_ratio``; plus the counts ``n``, ``positives``, ``negatives``,
        ``unparseable``, ``tp``, ``fp``, ``tn``, ``fn``. HoOA is the mean of positive and negative accuracy (None when
        either class is empty).

    Raises:
        ValueError: predictions and labels differ in number (the message gives both counts), no items, a label
            that is not yes/no, or pairs of another length.
        TypeError: an answer of an unsupported type.
    """
    n_pred, n_lab = len(predictions), len(labels)
    if n_pred != n_lab:
        raise ValueError(f"{n_pred:,} predictions for {n_lab:,} labels: every label needs exactly one prediction "
                         "(refusing to score a truncated or misaligned set)")
    if n_lab == 0:
        raise ValueError("no predictions to score")
    if pairs is not None and len(pairs) != n_lab:
        raise ValueError(f"{len(pairs):,} pair ids for {n_lab:,} labels")
    truth = _labels(labels)
    parsed = [parse_answer(p) for p in predictions]
    said_yes = np.array([a == YES for a in parsed])
    said_no = np.array([a == NO for a in parsed])
    correct = np.where(truth, said_yes, said_no)
    tp, fp = int((said_yes & truth).sum()), int((said_yes & ~truth).sum())
    tn, fn = int((said_no & ~truth).sum()), int((truth & ~said_yes).sum())
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    pos_acc = _rate(int(correct[truth].sum()), n_pos)
    neg_acc = _rate(int(correct[~truth].sum()), n_neg)
    hooa_value = None
    hooa_ci = None
    if n_pos and n_neg:
        hooa_value = (pos_acc["value"] + neg_acc["value"]) / 2
        hooa_ci = _hooa_interval(correct, truth, pairs, seed)
    f1 = _f1(tp, fp, fn)
    return {
        "hooa": {"value": hooa_value, "ci": hooa_ci, "n": n_lab},
        "accuracy": _rate(int(correct.sum()), n_lab),
        "positive_accuracy": pos_acc,
        "negative_accuracy": neg_acc,
        "precision": _rate(tp, tp + fp),
        "recall": _rate(tp, tp + fn),
        "f1": {"value": f1, "ci": _f1_interval(said_yes, truth, pairs, seed), "n": n_lab},
        "yes_ratio": _rate(int(said_yes.sum()), n_lab),
        "n": n_lab, "positives": n_pos, "negatives": n_neg,
        "unparseable": int(sum(a is None for a in parsed)),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }


def _groups(pairs: Sequence[object]) -> list[np.ndarray]:
    index: dict[object, list[int]] = {}
    for i, pid in enumerate(pairs):
        index.setdefault(pid, []).append(i)
    return [np.asarray(v) for v in index.values()]


def _hooa_interval(correct: np.ndarray, truth: np.ndarray, pairs, seed: int) -> list[float]:
    """95% interval of HoOA: bootstrap over pairs when every pair holds one positive and one negative, else a
    class-stratified bootstrap over items."""
    from vlarm.stats import score_interval

    if pairs is not None:
        groups = _groups(pairs)
        if all(len(g) == 2 and truth[g].sum() == 1 for g in groups):
            pair_means = [float(correct[g].mean()) for g in groups]
            low, high = score_interval(pair_means, seed=seed)
            return [low / 100, high / 100]
    rng = np.random.default_rng(seed)
    pos, neg = correct[truth].astype(float), correct[~truth].astype(float)
    stats = (rng.choice(pos, (BOOTSTRAP_RESAMPLES, len(pos))).mean(1)
             + rng.choice(neg, (BOOTSTRAP_RESAMPLES, len(neg))).mean(1)) / 2
    return [float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))]


def _f1_interval(said_yes: np.ndarray, truth: np.ndarray, pairs, seed: int) -> list[float]:
    """95% percentile-bootstrap interval of F1, resampling pairs (when given) or items."""
    rng = np.random.default_rng(seed)
    groups = _groups(pairs) if pairs is not None else [np.array([i]) for i in range(len(truth))]
    tp_g = np.array([int((said_yes[g] & truth[g]).sum()) for g in groups])
    fp_g = np.array([int((said_yes[g] & ~truth[g]).sum()) for g in groups])
    fn_g = np.array([int((truth[g] & ~said_yes[g]).sum()) for g in groups])
    idx = rng.integers(0, len(groups), (BOOTSTRAP_RESAMPLES, len(groups)))
    tp, fp, fn = tp_g[idx].sum(1), fp_g[idx].sum(1), fn_g[idx].sum(1)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return [float(np.percentile(f1, 2.5)), float(np.percentile(f1, 97.5))]


def format_metric(metric: dict) -> str:
    """A metric dict of :func:`hooa_scores` in percent with its interval, ``"77.5 [74.1, 80.6]"``
    (:func:`vlarm.stats.format_ci`), or ``"-"`` when undefined."""
    from vlarm.stats import format_ci

    if metric.get("value") is None:
        return "-"
    ci = metric.get("ci")
    return format_ci(100 * metric["value"], None if ci is None else [100 * ci[0], 100 * ci[1]])
