"""Answering and timing: a trained MIAVLM (or baseline) on a benchmark's questions and on single scenes.

Scoring the answers (HoOA, POPE's metrics) lives in :mod:`vlarm.eval.qa.scoring`.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from vlarm.vlm.qa.dataset import QABenchmark
from vlarm.vlm.qa.model import EFFNET_CHANNELS, EFFNET_INPUT, MIAVLM, QuestionFeaturizer, answer_text, effnet_tokens


@torch.no_grad()
def benchmark_view_inputs(model: MIAVLM, bench: QABenchmark, progress: bool = False) -> torch.Tensor:
    """What ``model.encode_views(inputs=...)`` reads for every scene of a benchmark.

    For a model on frozen EfficientNet features the features are computed once per benchmark and cached in
    ``BENCH/cache/`` (:func:`vlarm.weights.save_weights`, float16): every view of every scene, or the tiled view for
    ``tile`` models (one file per view set). For a ``cnn`` model, the normalised pixels.

    Returns:
        ``(n_scenes, n', T, 152)`` float16 features or ``(n_scenes, n', 3, S, S)`` float32 pixels, ``n'`` the
        model's view count (1 for ``tile``).
    """
    from tqdm.auto import tqdm

    from vlarm.weights import load_weights, save_weights

    images = bench.images()
    views = list(model.config.views)
    if not model.reads_features:
        return model.view_inputs(images[:, views])
    tiled = model.config.fusion == "tile"
    name = f"effnet{EFFNET_INPUT}-" + ("tile-" + "-".join(map(str, views)) if tiled else "views")
    path = bench.path / "cache" / f"{name}.safetensors"
    if path.is_file():
        cached = load_weights(path)[0]["features"]
    else:
        chunks = []
        for b in tqdm(range(0, len(images), 8), desc="view features", disable=not progress):
            chunk = images[b:b + 8]
            if tiled:
                chunks.append(model.view_inputs(chunk[:, views]).half())
            else:
                x = torch.from_numpy(chunk).permute(0, 1, 4, 2, 3).float().flatten(0, 1) / 255.0
                chunks.append(effnet_tokens(model.backbone(), x).view(len(chunk), images.shape[1], -1,
                                                                      EFFNET_CHANNELS).half())
        cached = torch.cat(chunks)
        path.parent.mkdir(exist_ok=True)
        save_weights({"features": cached}, path, metadata={"what": f"frozen EfficientNet-Lite0 tokens, {name}"})
    return cached if tiled else cached[:, views]


@torch.no_grad()
def predict(model: MIAVLM, featurizer: QuestionFeaturizer, inputs: torch.Tensor, records: list[dict],
            batch_scenes: int = 32) -> np.ndarray:
    """Probability of "yes" for every question record.

    Args:
        model: the model (put in eval mode here).
        featurizer: its question featurizer.
        inputs: :func:`benchmark_view_inputs` of the model on the benchmark, indexed by scene.
        records: question records (``scene`` and ``question`` fields).
        batch_scenes: scenes encoded at once.

    Returns:
        ``(len(records),)`` float64 probabilities in [0, 1], in record order.
    """
    model.eval()
    by_scene: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_scene.setdefault(int(r["scene"]), []).append(i)
    scenes = sorted(by_scene)
    out = np.zeros(len(records))
    for b in range(0, len(scenes), batch_scenes):
        chunk = scenes[b:b + batch_scenes]
        visual, _ = model.encode_views(inputs=inputs[chunk])
        idx = [i for s in chunk for i in by_scene[s]]
        where = torch.tensor([chunk.index(int(records[i]["scene"])) for i in idx])
        feats, mask = featurizer([records[i]["question"] for i in idx])
        out[idx] = torch.sigmoid(model.answer_logits(visual[where], feats, mask)).double().numpy()
    return out


@torch.no_grad()
def view_weights(model: MIAVLM, bench: QABenchmark, split: str, batch_scenes: int = 32) -> np.ndarray | None:
    """The fusion's weight of each view on every scene of a split (how much MAP relies on each view).

    Args:
        model: the model.
        bench: the benchmark.
        split: one of :data:`vlarm.vlm.qa.dataset.QA_SPLITS`.
        batch_scenes: scenes encoded at once.

    Returns:
        ``(scenes, n)`` float64 weights (rows sum to 1, scenes in index order), or None for ``concat`` (no weights).

    Raises:
        ValueError: an unknown split.
    """
    model.eval()
    scenes = sorted({int(r["scene"]) for r in bench.questions(split)})
    inputs = benchmark_view_inputs(model, bench)
    rows = []
    for b in range(0, len(scenes), batch_scenes):
        _, weights = model.encode_views(inputs=inputs[scenes[b:b + batch_scenes]])
        if weights is None:
            return None
        rows.append(weights.double().numpy())
    return np.concatenate(rows)


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
        One ``{"question", "answer" ("Yes"/"No"), "p_yes", "view_weights"}`` per question (``view_weights``: the
        fusion's weight of each view read, :meth:`vlarm.vlm.qa.model.MIAVLM.encode_views`; None for ``concat``).

    Raises:
        ValueError: the scene has fewer views than the model reads, or no question.
    """
    model.eval()
    questions = [questions] if isinstance(questions, str) else list(questions)
    views = list(model.config.views)
    if images.ndim != 4 or images.shape[0] <= max(views):
        raise ValueError(f"the model reads views {views}; got images of shape {tuple(images.shape)} "
                         "(expected (V, S, S, 3) with V > the largest view index): give the scene's views from a "
                         "benchmark built like the one the model was trained on")
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

