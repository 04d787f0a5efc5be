"""RT-1 (issue 11) at CPU scale: collect ee_delta expert trajectories, train the CPU-size RT-1 (multi-task and the
data-diversity ablation), evaluate closed loop (seen / unseen instructions), and time a control step.

Every stage resumes (datasets and runs are reused). CPU-minutes of each stage are recorded in the JSON, with the
recipe (demos, steps, DART noise, RT-1 config options) that produced it.

    nice -n 10 .venv/bin/python benchmarks/rt1_table.py --out outputs/rt1 [--stage collect|train|eval|latency]
    # the second recipe: DART noise in the expert data, the tip-state token, more data, checkpoint chosen on val
    .venv/bin/python benchmarks/rt1_table.py --out outputs/rt1-dart --demos 100 --steps 6000 --expert-noise 0.01 \
        --policy-option state_token=true --select-episodes 10 --episodes 20 --stage collect|train|select|eval|eval2
    # one checkpoint (the shipped CLIPort by default) on the four test cells: seen, unseen colours, distractors,
    # backgrounds; the same test seeds for every checkpoint
    .venv/bin/python benchmarks/rt1_table.py --out outputs/rt1-dart1000 --episodes 20 --stage cells \
        [--checkpoint C --label rt1]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from vlarm.data.trajectories import collect_trajectories
from vlarm.eval.rollout import CheckpointAgentFactory, evaluate
from vlarm.eval.selection import select_checkpoint
from vlarm.policies.factory import parse_policy_options
from vlarm.policies.rt1 import RT1Config, RT1Policy, paper_config
from vlarm.policies.rt1.training import RT1TrainConfig, train_rt1
from vlarm.sim import appearance
from vlarm.tasks.attributes import COLORS

A, B = "put-block-in-bowl-seen-colors", "packing-shapes"


def runs(demos: int, steps: int) -> dict[str, tuple[list[str], int, int]]:
    """name -> (datasets, demos per task, steps): the main multi-task run (``demos`` per task, ``steps``) and the
    diversity-vs-quantity ablation at half the steps (one task with ``demos``; two tasks with half the demos)."""
    half = steps // 2
    return {
        f"multi-2tasks-{demos}demos": ([A, B], demos, steps),
        f"fewer-tasks-1task-{demos}demos": ([A], demos, half),
        f"less-data-2tasks-{demos // 2}demos": ([A, B], demos // 2, half),
    }


def evals(demos: int, steps: int, main_checkpoint: str) -> list[tuple[str, str, str, str]]:
    """(run, checkpoint, eval task, label): seen = training tasks' test seeds; unseen = held-out colour
    combinations. The main run's checkpoint is its last or the one chosen on val (``main_checkpoint``); the
    ablation compares the three runs at the same step (half of ``steps``), fixed in advance."""
    half, main = steps // 2, f"multi-2tasks-{demos}demos"
    return [
        (main, main_checkpoint, A, "seen (put-block-in-bowl, seen colours)"),
        (main, main_checkpoint, B, "seen (packing-shapes, unseen shapes on test)"),
        (main, main_checkpoint, "put-block-in-bowl-unseen-colors", "unseen instructions (novel colours)"),
        (main, f"step_{half:06d}", A, f"ablation: 2 tasks x {demos} demos (step {half})"),
        (f"fewer-tasks-1task-{demos}demos", "last", A, f"ablation: fewer tasks (1 x {demos}, step {half})"),
        (f"less-data-2tasks-{demos // 2}demos", "last", A,
         f"ablation: less data per task (2 x {demos // 2}, step {half})"),
    ]


class ExtraDistractors:
    """Scene hook for the distractor test: ``count`` more blocks, in colours no object of the scene has (so never
    the pick or place colour), dropped on free table spots (>= 8 cm from every object)."""

    def __init__(self, count: int = 4):
        self.count = count

    def __call__(self, scene, rng: np.random.Generator) -> None:
        used = {o.color for o in scene.objects.values()}
        palette = [c for c in COLORS if c not in used]
        taken = [scene.pose(b)[0][:2] for b in scene.objects]
        added = 0
        for _ in range(200):
            xy = rng.uniform([0.3, -0.4], [0.7, 0.4])
            if added == self.count or not palette:
                break
            if all(np.linalg.norm(xy - t) > 0.08 for t in taken):
                color = palette[added % len(palette)]
                scene.add_block((np.array([*xy, 0.0]), np.array([0.0, 0.0, 0.0, 1.0])), COLORS[color], color)
                taken.append(xy)
                added += 1
        scene.settle()


class NewBackground:
    """Scene hook for the background test: a random table-top colour and a random ground colour
    (:mod:`vlarm.sim.appearance`), never seen in training (trained on the plain dark table). Table *textures* are
    left out: ``appearance.set_table_texture`` writes a PPM that this PyBullet build refuses ("Unsupported texture
    image format"), so the table would stay plain."""

    def __call__(self, scene, rng: np.random.Generator) -> None:
        appearance.set_table_color(scene, rng.uniform(0.3, 0.9, 3))
        appearance.set_background_color(scene, rng.uniform(0.1, 0.9, 3))


#: (task, label, scene hook): the distractor and background tests on the seen task's test seeds (main run).
EVALS_APPEARANCE = [
    (A, "distractors (+4 blocks)", ExtraDistractors(4)),
    (A, "backgrounds (new table and ground colours)", NewBackground()),
]


#: the cells stage's cell names: the seen and unseen-colour test splits, then the scene hooks above.
CELL_TAGS = ("seen", "unseen", *(type(hook).__name__ for _, _, hook in EVALS_APPEARANCE))


def cpu_minutes() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) / 60


def record(out: Path, key: str, value) -> None:
    """Set ``key`` in ``out/rt1_table.json`` (under a lock, so stages may run in parallel processes)."""
    path = out / "rt1_table.json"
    with (out / "rt1_table.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[key] = value
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/rt1"))
    parser.add_argument("--stage", choices=["collect", "train", "select", "eval", "latency", "eval2", "cells",
                                            "all"], default="all")
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/cliport-vlm-put-block-in-bowl"),
                        help="cells stage: the checkpoint (RT-1 or CLIPort) evaluated on the four test cells")
    parser.add_argument("--label", default="cliport", help="cells stage: the name its results are recorded under")
    parser.add_argument("--cell", action="append", choices=CELL_TAGS, default=None,
                        help="cells stage: only this cell (repeatable; e.g. two processes with two cells each)")
    parser.add_argument("--episodes", type=int, default=10, help="test episodes per evaluation cell")
    parser.add_argument("--demos", type=int, default=40, help="expert trajectories per task (main run)")
    parser.add_argument("--steps", type=int, default=1500, help="training steps of the main run (ablations: half)")
    parser.add_argument("--expert-noise", type=float, default=0.0, help="DART noise of the expert data, metres")
    parser.add_argument("--policy-option", action="append", default=[], metavar="KEY=VALUE",
                        help="RT-1 config field for every run (repeatable), e.g. state_token=true token_stride=16")
    parser.add_argument("--run", action="append", default=None,
                        help="train stage: only this run (repeatable; e.g. to train the ablations in another process)")
    parser.add_argument("--select-episodes", type=int, default=0,
                        help="val episodes per task to choose the main run's checkpoint on (0: its last)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage != "cells":   # the cells stage trains nothing: keep the recipe of the runs in args.out
        record(args.out, "recipe", {"demos": args.demos, "steps": args.steps, "expert_noise": args.expert_noise,
                                    "policy_options": parse_policy_options("rt1", args.policy_option),
                                    "select_episodes": args.select_episodes,
                                    "test_episodes": args.episodes})
    run_specs = runs(args.demos, args.steps)
    main_run = args.out / "runs" / next(iter(run_specs))
    if args.stage in ("collect", "all"):
        for task in (A, B):
            start = cpu_minutes()
            report = collect_trajectories(task, "train", args.demos, args.out / "data" / task,
                                          expert_noise=args.expert_noise, progress=False)
            record(args.out, f"collect/{task}", {**report, "cpu_minutes": cpu_minutes() - start})
            print("collected", task, report, flush=True)
    if args.stage in ("train", "all"):
        for name, (tasks, demos, steps) in run_specs.items():
            if args.run and name not in args.run:
                continue
            start = cpu_minutes()
            cfg = RT1TrainConfig(data_dirs=[str(args.out / "data" / t) for t in tasks], demos=demos, steps=steps,
                                 batch_size=4, out_dir=args.out / "runs" / name, save_every=250, log_every=20,
                                 policy_overrides=parse_policy_options("rt1", args.policy_option),
                                 progress=False)
            last = train_rt1(cfg)
            record(args.out, f"train/{name}", {"checkpoint": str(last), "tasks": tasks, "demos": demos,
                                                "steps": steps, "cpu_minutes_this_process": cpu_minutes() - start})
            print("trained", name, flush=True)
    main_checkpoint = "last"
    if args.select_episodes and args.stage in ("select", "eval", "eval2", "all"):
        start = cpu_minutes()
        selection = select_checkpoint([main_run], [A, B], args.select_episodes, args.out / "select", every=4,
                                      camera_scale=0.5, progress=False, device="cpu")
        main_checkpoint = Path(selection["best"]["checkpoint"]).name
        record(args.out, "select", {"chosen": main_checkpoint, "episodes_per_task": args.select_episodes,
                                    "candidates": [(r["step"], r["mean_score"]) for r in selection["candidates"]],
                                    "cpu_minutes_this_process": cpu_minutes() - start})
        print("selected", main_checkpoint, flush=True)
    if args.stage in ("eval", "all"):
        for name, ckpt, task, label in evals(args.demos, args.steps, main_checkpoint):
            start = cpu_minutes()
            factory = CheckpointAgentFactory(str(args.out / "runs" / name / "checkpoints" / ckpt))
            res = evaluate(factory, task, split="test", episodes=args.episodes, camera_scale=0.5, progress=False,
                           label=f"rt1 {name} {ckpt}", out_dir=args.out / "eval" / f"{name}__{ckpt}__{task}")
            record(args.out, f"eval/{name}/{ckpt}/{task}", {
                "label": label, "score": res["score"], "score_ci": res["score_ci"],
                "success_rate": res["success_rate"], "success_ci": res["success_ci"], "episodes": res["episodes"],
                "mean_steps": res["mean_steps"], "select_action_ms_mean": res["select_action_ms_mean"],
                "cpu_minutes": cpu_minutes() - start})
            print("eval", name, ckpt, task, res["score"], res["success_rate"], flush=True)
    if args.stage in ("eval2",):
        for task, label, hook in EVALS_APPEARANCE:
            start = cpu_minutes()
            name = main_run.name
            factory = CheckpointAgentFactory(str(main_run / "checkpoints" / main_checkpoint))
            tag = type(hook).__name__
            res = evaluate(factory, task, split="test", episodes=args.episodes, camera_scale=0.5, progress=False,
                           label=f"rt1 {name} {tag}", out_dir=args.out / "eval" / f"{name}__{task}__{tag}",
                           env_options={**factory.env_options, "appearance": hook})
            record(args.out, f"eval/{name}/{task}/{tag}", {
                "label": label, "score": res["score"], "score_ci": res["score_ci"],
                "success_rate": res["success_rate"], "success_ci": res["success_ci"], "episodes": res["episodes"],
                "mean_steps": res["mean_steps"], "cpu_minutes": cpu_minutes() - start})
            print("eval", name, task, tag, res["score"], flush=True)
    if args.stage == "cells":   # one checkpoint on the four test cells (seen, unseen, distractors, backgrounds)
        factory = CheckpointAgentFactory(str(args.checkpoint))
        # CLIPort's cameras are its input: the scale it records (None); RT-1's camera is its own, and the planning
        # cameras (only the oracle's) can be cheap
        camera_scale = 0.5 if factory.env_options.get("action_mode") == "ee_delta" else None
        cells = [(A, "seen", None), ("put-block-in-bowl-unseen-colors", "unseen", None)]
        cells += [(task, type(hook).__name__, hook) for task, _, hook in EVALS_APPEARANCE]
        for task, tag, hook in cells:
            if args.cell and tag not in args.cell:
                continue
            start = cpu_minutes()
            options = {**factory.env_options, **({"appearance": hook} if hook else {})}
            res = evaluate(factory, task, split="test", episodes=args.episodes, camera_scale=camera_scale,
                           progress=False, label=f"{args.label} {tag}",
                           out_dir=args.out / "eval" / f"{args.label}__{task}__{tag}", env_options=options)
            record(args.out, f"eval/{args.label}/{task}/{tag}", {
                "checkpoint": str(args.checkpoint), "score": res["score"], "score_ci": res["score_ci"],
                "success_rate": res["success_rate"], "success_ci": res["success_ci"], "episodes": res["episodes"],
                "mean_steps": res["mean_steps"], "cpu_minutes": cpu_minutes() - start})
            print("eval", args.label, task, tag, res["score"], res["success_rate"], flush=True)
    if args.stage in ("latency", "all"):
        rng = np.random.default_rng(0)
        variants = (("cpu", RT1Config()), ("paper", paper_config()),
                    ("cpu-stride16-state", RT1Config(token_stride=16, position_embedding=True, state_token=True)))
        for label, config in variants:
            policy = RT1Policy(config).eval()
            obs = {"rgb": rng.integers(0, 255, (*config.image_size, 3), dtype=np.uint8),
                   "state": np.zeros(8, np.float32), "instruction": "put the red blocks in a green bowl"}
            for _ in range(config.history):          # fill the cached history (and the instruction cache)
                policy.select_action(obs)
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                policy.select_action(obs)
                times.append(1000 * (time.perf_counter() - t0))
            record(args.out, f"latency/{label}", {"ms_median": float(np.median(times)), "ms_p90":
                                                  float(np.percentile(times, 90)), "threads": 1, "steps": 20,
                                                  "image_size": list(config.image_size),
                                                  "parameters": sum(p.numel() for p in policy.parameters())})
            print("latency", label, np.median(times), flush=True)


if __name__ == "__main__":
    main()
