"""RT-1 (issue 11) at CPU scale: collect ee_delta expert trajectories, train the CPU-size RT-1 (multi-task and the
data-diversity ablation), evaluate closed loop (seen / unseen instructions), and time a control step.

Every stage resumes (datasets and runs are reused). CPU-minutes of each stage are recorded in the JSON.

    nice -n 10 .venv/bin/python benchmarks/rt1_table.py --out outputs/rt1 [--stage collect|train|eval|latency]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from vlarm.data.trajectories import collect_trajectories
from vlarm.eval.rollout import CheckpointAgentFactory, evaluate
from vlarm.policies.rt1 import RT1Config, RT1Policy, paper_config
from vlarm.policies.rt1.training import RT1TrainConfig, train_rt1

A, B = "put-block-in-bowl-seen-colors", "packing-shapes"
#: name -> (datasets, demos per task, steps): the main multi-task run and the diversity-vs-quantity ablation.
RUNS = {
    "multi-2tasks-40demos": ([A, B], 40, 500),
    "fewer-tasks-1task-40demos": ([A], 40, 300),
    "less-data-2tasks-20demos": ([A, B], 20, 300),
}
#: (run, eval task, label): seen = training tasks' test seeds; unseen = held-out colour combinations.
EVALS = [
    ("multi-2tasks-40demos", A, "seen (put-block-in-bowl, seen colours)"),
    ("multi-2tasks-40demos", B, "seen (packing-shapes, unseen shapes on test)"),
    ("multi-2tasks-40demos", "put-block-in-bowl-unseen-colors", "unseen instructions (novel colours)"),
    ("fewer-tasks-1task-40demos", A, "ablation: fewer tasks"),
    ("less-data-2tasks-20demos", A, "ablation: less data per task"),
]


def cpu_minutes() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) / 60


def record(out: Path, key: str, value) -> None:
    path = out / "rt1_table.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/rt1"))
    parser.add_argument("--stage", choices=["collect", "train", "eval", "latency", "all"], default="all")
    parser.add_argument("--episodes", type=int, default=10, help="test episodes per evaluation cell")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage in ("collect", "all"):
        for task in (A, B):
            start = cpu_minutes()
            report = collect_trajectories(task, "train", 40, args.out / "data" / task, progress=False)
            record(args.out, f"collect/{task}", {**report, "cpu_minutes": cpu_minutes() - start})
            print("collected", task, report, flush=True)
    if args.stage in ("train", "all"):
        for name, (tasks, demos, steps) in RUNS.items():
            start = cpu_minutes()
            cfg = RT1TrainConfig(data_dirs=[str(args.out / "data" / t) for t in tasks], demos=demos, steps=steps,
                                 batch_size=4, out_dir=args.out / "runs" / name, save_every=100, log_every=20,
                                 progress=False)
            last = train_rt1(cfg)
            record(args.out, f"train/{name}", {"checkpoint": str(last), "tasks": tasks, "demos": demos,
                                                "steps": steps, "cpu_minutes_this_process": cpu_minutes() - start})
            print("trained", name, flush=True)
    if args.stage in ("eval", "all"):
        for name, task, label in EVALS:
            start = cpu_minutes()
            factory = CheckpointAgentFactory(str(args.out / "runs" / name / "checkpoints" / "last"))
            res = evaluate(factory, task, split="test", episodes=args.episodes, camera_scale=0.5, progress=False,
                           label=f"rt1 {name}", out_dir=args.out / "eval" / f"{name}__{task}")
            record(args.out, f"eval/{name}/{task}", {
                "label": label, "score": res["score"], "score_ci": res["score_ci"],
                "success_rate": res["success_rate"], "success_ci": res["success_ci"], "episodes": res["episodes"],
                "mean_steps": res["mean_steps"], "select_action_ms_mean": res["select_action_ms_mean"],
                "cpu_minutes": cpu_minutes() - start})
            print("eval", name, task, res["score"], res["success_rate"], flush=True)
    if args.stage in ("latency", "all"):
        rng = np.random.default_rng(0)
        for label, config in (("cpu", RT1Config()), ("paper", paper_config())):
            policy = RT1Policy(config).eval()
            obs = {"rgb": rng.integers(0, 255, (*config.image_size, 3), dtype=np.uint8),
                   "instruction": "put the red blocks in a green bowl"}
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
