"""MIAVLM's table on the simulator benchmark: views x model x negative instructions, HoOA and F1 with intervals.

1. Builds (or reuses) the benchmark (:mod:`vlarm.eval.qa.benchmark`): ``--scenes`` seen-value scenes split 9:1
   (a ninth of the non-test scenes held out for validation), and ``--unseen-scenes`` scenes with CLIPort's EVAL
   colours and unseen kit shapes; nine 64 x 64 views each.
2. Trains every model with and without negative instructions (:mod:`vlarm.vlm.qa.train`; a rerun resumes):
   MIAVLM on the front view only ("1") and on all nine ("1+8"), 9in1 tiling and the order-sensitive concatenation
   on nine, and optionally the uniform-mean ablation (``--mean``). With one view the models coincide (MAP weight 1,
   one tile, one slot), so the single-view row is MIAVLM on view 0. MIAVLM trains with ``--view-dropout`` and
   ``--view-entropy`` (choose them on validation first: ``benchmarks/miavlm_select.py``).
3. Scores test and unseen splits per POPE setting (random / popular / adversarial): HoOA, F1, accuracy,
   positive / negative accuracy, yes-ratio with 95% intervals, plus HoOA per question type and on the pairs whose
   subject the front view does not show.
4. Checks order on the trained models: answers and probabilities over ``--order-scenes`` test scenes under random
   permutations of their views (MIAVLM must not change; the concatenation does).
5. Times one question (uint8 views -> answer, frozen backbone included) with 1 and 2 torch threads.

Writes ``--out`` (JSON with everything) and ``--markdown`` (the results section), by default under ``outputs/miavlm/``.
``--only map-1,map-1+8 --ni-only --epochs 60`` reruns a subset longer (the longer-training check of the results).

Run: ``MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824
HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python
benchmarks/miavlm_table.py``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _miavlm import add_benchmark_args, build
from _report import run_metadata, write_outputs

from vlarm.eval.qa.metrics import format_metric
from vlarm.eval.qa.scoring import evaluate
from vlarm.vlm.qa.dataset import NEGATIVE_SETTINGS, QUESTION_TYPES, QABenchmark
from vlarm.vlm.qa.inference import ask, time_per_question, view_weights
from vlarm.vlm.qa.model import QuestionFeaturizer
from vlarm.vlm.qa.train import QATrainConfig, load_model, train

#: (label, fusion, view set) of the models in the table.
MODELS = (("MIAVLM (single view)", "map", "1"), ("MIAVLM", "map", "1+8"), ("9in1", "tile", "1+8"),
          ("order-sensitive concat", "concat", "1+8"))
PAPER = ("paper (MIAVLM, CelebAText-HQ faces): HoOA 0.775 with the original view, 0.787 with it and 8 generated "
         "views; 0.665 -> 0.787 with negative instructions; 0.071 / 0.105 s per question on a GPU")


def order_check(model, bench: QABenchmark, scenes: list[int], permutations: int, seed: int = 0) -> dict:
    """Answers of a model about test scenes under random permutations of their views.

    Returns:
        ``{"questions", "permutations", "answers_changed", "max_abs_dp"}``: how many answers flip across all
        permutations and the largest change of the probability of yes.
    """
    rng = np.random.default_rng(seed)
    feat = QuestionFeaturizer(model.config)
    images = bench.images()
    n_views = len(model.config.views)
    changed, max_dp, total = 0, 0.0, 0
    for s in scenes:
        questions = [r["question"] for r in bench.records if r["scene"] == s]
        views = images[s][list(model.config.views)]
        base = ask(model, views, questions, feat)
        for _ in range(permutations):
            perm = rng.permutation(n_views)
            full = images[s].copy()
            full[list(model.config.views)] = views[perm]     # the model's views, shuffled among themselves
            got = ask(model, full, questions, feat)
            changed += sum(a["answer"] != b["answer"] for a, b in zip(base, got, strict=True))
            max_dp = max(max_dp, max(abs(a["p_yes"] - b["p_yes"]) for a, b in zip(base, got, strict=True)))
            total += len(questions)
    return {"questions": total, "permutations": permutations, "answers_changed": changed, "max_abs_dp": max_dp}


def timing(model, bench: QABenchmark) -> dict:
    """Seconds per question with 1 and 2 torch threads (median over 10 runs)."""
    view = bench.images()[bench.questions("test")[0]["scene"]]
    out = {}
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out[f"{threads}_threads"] = time_per_question(model, view, "Is the block red?", repeats=10)
    torch.set_num_threads(before)
    return out


def markdown(result: dict) -> str:
    """The results section (tables of HoOA / F1 per setting, per type, order check, timing)."""
    lines = [f"Command: `{result['meta']['command']}`", ""]
    counts = result["counts"]
    lines.append("Benchmark: " + ", ".join(
        f"{split} {c['scenes']} scenes / {c['positives']} positive + {c['positives']} negative questions per setting"
        for split, c in counts.items()) + f". {PAPER}.")
    lines += ["", "HoOA and F1 (percent, 95% interval; HoOA bootstraps positive/negative pairs) on the **test** split, "
              "per POPE negative setting:", "",
              "| views | model | negative instructions | " + " | ".join(
                  f"HoOA {s} | F1 {s}" for s in NEGATIVE_SETTINGS) + " | yes-ratio (random) |",
              "|---|---|---|" + "---|---|" * len(NEGATIVE_SETTINGS) + "---|"]
    for run in result["runs"]:
        sets = run["eval"]["test"]["settings"]
        cells = " | ".join(f"{format_metric(sets[s]['hooa'])} | {format_metric(sets[s]['f1'])}"
                           for s in NEGATIVE_SETTINGS)
        lines.append(f"| {run['views']} | {run['label']} | {'with' if run['negative_instructions'] else 'without'} "
                     f"| {cells} | {format_metric(sets['random']['yes_ratio'])} |")
    lines += ["", "The same on the **unseen** split (CLIPort's EVAL colours, unseen kit shapes), HoOA per setting, "
              "and HoOA on its pairs naming an unseen value (adversarial):", "",
              "| views | model | NI | " + " | ".join(f"HoOA {s}" for s in NEGATIVE_SETTINGS)
              + " | novel pairs, adversarial |", "|---|---|---|" + "---|" * (len(NEGATIVE_SETTINGS) + 1)]
    for run in result["runs"]:
        ev = run["eval"]["unseen"]
        cells = " | ".join(format_metric(ev["settings"][s]["hooa"]) for s in NEGATIVE_SETTINGS)
        novel = ev["novel"]["adversarial"]
        lines.append(f"| {run['views']} | {run['label']} | {'with' if run['negative_instructions'] else 'without'} "
                     f"| {cells} | {format_metric(novel['hooa']) if novel else '-'} |")
    lines += ["", "HoOA per question type (test, adversarial negatives), and on the pairs whose subject the front "
              "camera does not show (painted faces turned away, occlusions):", "",
              "| views | model | NI | " + " | ".join(QUESTION_TYPES) + " | not in front view |",
              "|---|---|---|" + "---|" * (len(QUESTION_TYPES) + 1)]
    for run in result["runs"]:
        ev = run["eval"]["test"]
        cells = " | ".join(format_metric(ev["by_type"]["adversarial"][t]["hooa"]) +
                           f" (n={ev['by_type']['adversarial'][t]['n']})" for t in QUESTION_TYPES)
        hidden = ev["hidden_in_front"]["adversarial"]
        lines.append(f"| {run['views']} | {run['label']} | {'with' if run['negative_instructions'] else 'without'} "
                     f"| {cells} | {format_metric(hidden['hooa'])} (n={hidden['n']}) |")
    lines += ["", "MAP view weights on the test scenes (mean per view, views in benchmark order; and the mean over "
              "scenes of the largest weight, 1/9 = uniform, 1 = one view):", ""]
    for run in result["runs"]:
        w = run.get("view_weights_test")
        if w:
            lines.append(f"- {run['label']} ({'with' if run['negative_instructions'] else 'without'} NI): "
                         f"{', '.join(f'{x:.3f}' for x in w['mean'])}; largest {w['largest_per_scene_mean']:.3f}")
    lines += ["", "Order: answers about test scenes under random permutations of the model's views:", "",
              "| model | NI | questions x permutations | answers changed | max abs change of p(yes) |",
              "|---|---|---|---|---|"]
    for run in result["runs"]:
        o = run.get("order")
        if o:
            lines.append(f"| {run['label']} ({run['views']}) | {'with' if run['negative_instructions'] else 'without'}"
                         f" | {o['questions']} | {o['answers_changed']} | {o['max_abs_dp']:.2e} |")
    lines += ["", "Inference, seconds per question from uint8 views to the answer (frozen EfficientNet included; "
              "question features cached; median of 10), on this shared 2-core CPU:", "",
              "| model | views | 1 thread | 2 threads | new question's MiniLM encoding |", "|---|---|---|---|---|"]
    for label, t in result["timing"].items():
        lines.append(f"| {label} | {t['1_threads']['views']} | {t['1_threads']['median_s']:.3f} | "
                     f"{t['2_threads']['median_s']:.3f} | {t['1_threads']['question_encoding_s']:.3f} |")
    lines += ["", f"CPU time of this run: {result['cpu_minutes']:.1f} CPU-minutes."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_benchmark_args(parser)
    parser.add_argument("--view-dropout", type=float, default=0.0, help="MIAVLM's view dropout (chosen on val)")
    parser.add_argument("--view-entropy", type=float, default=0.0, help="MIAVLM's entropy bonus (chosen on val)")
    parser.add_argument("--runs", default="runs/miavlm")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--mean", action="store_true", help="also train the uniform-mean ablation")
    parser.add_argument("--only", default="", help="comma-separated FUSION-VIEWS to run, e.g. map-1,map-1+8 (all)")
    parser.add_argument("--ni-only", action="store_true", help="train only with negative instructions")
    parser.add_argument("--order-scenes", type=int, default=6)
    parser.add_argument("--order-permutations", type=int, default=4)
    parser.add_argument("--out", default="outputs/miavlm/miavlm_table.json")
    parser.add_argument("--markdown", default="outputs/miavlm/miavlm_table.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.process_time()
    bench, counts = build(args)
    models = MODELS + ((("uniform mean", "mean", "1+8"),) if args.mean else ())
    if args.only:
        models = tuple(m for m in models if f"{m[1]}-{m[2]}" in args.only.split(","))
    runs, timings = [], {}
    test_scenes = sorted({r["scene"] for r in bench.questions("test")})[: args.order_scenes]
    for label, fusion, views in models:
        for ni in (True,) if args.ni_only else (True, False):
            name = f"{fusion}-{views.replace('+', 'p')}-{'ni' if ni else 'no-ni'}"
            regular = {"view_dropout": args.view_dropout, "view_entropy": args.view_entropy} if fusion == "map" else {}
            if views == "1":
                regular = {}                                   # one view: nothing to drop or spread
            cfg = QATrainConfig(args.benchmark, f"{args.runs}/{name}", fusion=fusion, views=views,
                                negative_instructions=ni, epochs=args.epochs, lr=args.lr, **regular)
            log = train(cfg, progress=False)["log"]
            model = load_model(cfg.out)
            run = {"label": label, "fusion": fusion, "views": views, "negative_instructions": ni, "dir": cfg.out,
                   "train_log_tail": log[-1:] if log else None, "train_config": {k: v for k, v in vars(cfg).items()},
                   "eval": {k: v for k, v in evaluate(model, bench).items() if k != "predictions"}}
            if views == "1+8" and fusion in ("map", "concat"):
                run["order"] = order_check(model, bench, test_scenes, args.order_permutations)
            if views == "1+8" and fusion == "map":
                w = view_weights(model, bench, "test")
                run["view_weights_test"] = {"mean": w.mean(0).round(4).tolist(),
                                            "largest_per_scene_mean": float(w.max(1).mean())}
            runs.append(run)
            if ni and f"{label} ({views})" not in timings:
                timings[f"{label} ({views})"] = timing(model, bench)
            print(json.dumps({"run": name, "test_hooa": {s: run["eval"]["test"]["settings"][s]["hooa"]["value"]
                                                         for s in NEGATIVE_SETTINGS}}), flush=True)
    result = {"meta": run_metadata("miavlm_table.py", args), "counts": counts, "runs": runs, "timing": timings,
              "cpu_minutes": (time.process_time() - t0) / 60}
    write_outputs(result, args.out, markdown(result), args.markdown)


if __name__ == "__main__":
    main()
