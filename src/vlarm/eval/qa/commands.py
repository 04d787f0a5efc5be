"""Plain functions behind ``vlarm vlm qa build | train | eval | ask`` (the typer CLI only maps flags onto them).

Each returns a JSON-serialisable dict. Options left as None take the defaults of the dataclasses they fill
(:class:`vlarm.eval.qa.benchmark.BenchmarkConfig`, :class:`vlarm.vlm.qa.train.QATrainConfig`), so defaults live in
one place.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from vlarm.eval.qa.benchmark import BenchmarkConfig, benchmark_config, build_benchmark, render_scene
from vlarm.eval.qa.metrics import format_metric
from vlarm.eval.qa.questions import parse_question, truth, unknown_values
from vlarm.vlm.qa.dataset import NEGATIVE_SETTINGS, QA_SPLITS, QABenchmark, check_split
from vlarm.vlm.qa.train import QATrainConfig, load_model, train

#: The question templates, as ``vlarm vlm qa ask`` lists them for a question that follows none.
TEMPLATES = ("Is the {kind} {colour}?", "Is the {colour} object a {kind}?", "Is the {kind} {small|large}?",
             "Is the {kind} {left of|right of|in front of|behind} the {kind}?", "Does the {kind} have a {colour} side?")


def _given(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def qa_build(out: Path, **options) -> dict:
    """Build a benchmark into ``out`` (resumable); ``options`` are :class:`BenchmarkConfig` fields (None = default).

    Returns:
        ``{"benchmark": out, "counts": counts per split}``.

    Raises:
        ValueError: an invalid option or an ``out`` built with another configuration.
    """
    config = BenchmarkConfig(**_given(**options))
    counts = build_benchmark(out, config)
    return {"benchmark": str(out), "config": asdict(config), "counts": counts["splits"]}


def qa_train(benchmark: Path, out: Path, **options) -> dict:
    """Train (or resume) a model; ``options`` are :class:`QATrainConfig` fields (None = default).

    Returns:
        The training summary of :func:`vlarm.vlm.qa.train.train` plus the configuration.

    Raises:
        ValueError: an invalid option, an unfinished benchmark or an ``out`` trained with another configuration.
    """
    config = QATrainConfig(benchmark=str(benchmark), out=str(out), **_given(**options))
    result = train(config)
    return {"config": asdict(config), **result}


def summary_rows(result: dict, splits: tuple[str, ...]) -> list[dict]:
    """One row per split and negative setting of an :func:`vlarm.eval.qa.scoring.evaluate` result: HoOA, F1,
    accuracy, positive / negative accuracy, yes-ratio (percent with 95% intervals) and the question count."""
    rows = []
    for split in splits:
        for setting in NEGATIVE_SETTINGS:
            m = result[split]["settings"][setting]
            rows.append({"split": split, "setting": setting, "n": m["n"],
                         **{k: format_metric(m[k]) for k in ("hooa", "f1", "accuracy", "positive_accuracy",
                                                             "negative_accuracy", "yes_ratio")},
                         "unparseable": m["unparseable"]})
    return rows


def qa_eval(model: Path, benchmark: Path, splits: tuple[str, ...] = ("test", "unseen"),
            output: Path | None = None) -> dict:
    """Score a trained model on benchmark splits (:func:`vlarm.eval.qa.scoring.evaluate`).

    Args:
        model: model or training output directory.
        benchmark: benchmark directory.
        splits: splits to score.
        output: write the full result (with per-question probabilities) to this JSON file.

    Returns:
        ``{"rows": summary_rows, "result": full result without predictions}``.

    Raises:
        ValueError: an unknown split, a missing model or benchmark.
    """
    from vlarm.eval.qa.scoring import evaluate

    splits = tuple(check_split(s) for s in splits)
    bench = QABenchmark(benchmark)
    result = evaluate(load_model(model), bench, splits)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(result, indent=1) + "\n")
    return {"rows": summary_rows(result, splits), "result": {k: v for k, v in result.items() if k != "predictions"}}


def qa_ask(model: Path, questions: list[str], seed: int = 0, scene: int = 0, benchmark: Path | None = None,
           views_png: Path | None = None) -> dict:
    """Answer questions about one rendered scene.

    The scene is scene ``scene`` of the benchmark ``benchmark`` (its configuration), or, without one, of a
    benchmark with the default configuration, seed ``seed`` and the model's image size. Where a question follows a
    benchmark template, the true answer is given too.

    Args:
        model: model or training output directory.
        questions: the questions.
        seed: benchmark seed of the scene (ignored with ``benchmark``).
        scene: scene index (0 .. scenes + unseen_scenes - 1).
        benchmark: take the scene configuration from this benchmark directory.
        views_png: write the views side by side to this PNG.

    Returns:
        ``{"scene": spec dict, "answers": [{question, answer, p_yes, view_weights, truth, note}]}`` (``truth``
        "yes", "no" or None when the question follows no template, names a value the benchmark does not know, or is
        undecidable in the scene; ``note`` says which, and what the templates and values are, else None).

    Raises:
        ValueError: no question, a scene index out of range, a missing model or benchmark.
    """
    from vlarm.vlm.qa.inference import ask

    if not questions:
        raise ValueError("give at least one question, e.g. \"Is the block red?\"")
    net = load_model(model)
    if benchmark is not None:
        config = benchmark_config(QABenchmark(benchmark))
    else:
        config = BenchmarkConfig(seed=seed, image_size=net.config.image_size)
    if config.image_size != net.config.image_size:
        raise ValueError(f"the model reads {net.config.image_size}-pixel views; the benchmark renders "
                         f"{config.image_size}: pass --benchmark with the benchmark the model was trained on")
    spec, images = render_scene(config, scene)
    answers = ask(net, images, questions)
    for a in answers:
        query = parse_question(a["question"])
        unknown = None if query is None else unknown_values(query)
        fact = None if query is None or unknown else truth(spec, query)
        a["truth"] = None if fact is None else ("yes" if fact else "no")
        if query is None:
            a["note"] = ("follows no benchmark template, so its truth is unknown; templates: " + "; ".join(TEMPLATES))
        elif unknown:
            a["note"] = unknown + "; the answer is a guess"
        elif fact is None:
            a["note"] = "undecidable in this scene (no such object, or the two objects are too close to tell)"
        else:
            a["note"] = None
    if views_png is not None:
        import numpy as np
        from PIL import Image

        Path(views_png).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(list(images), axis=1)).save(views_png)
    return {"scene": spec.to_dict(), "views_read": list(net.config.views), "answers": answers}


__all__ = ["QA_SPLITS", "qa_ask", "qa_build", "qa_eval", "qa_train", "summary_rows"]
