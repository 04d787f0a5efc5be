"""RT-1 (issue 11): does the ee_delta expert solve the episodes the pick-and-place oracle solves, and does replaying
its recorded deltas open-loop solve them again?

For each family, the first N seeds of a split: (a) the pick-and-place oracle (vlarm/<task>-v0), (b) the ee_delta
expert (vlarm/<task>-ee-v0, closed loop), (c) the recorded ee_delta action vectors replayed open loop in a fresh
reset of the same seed. Writes JSON + a Markdown table with Wilson intervals and CPU-minutes.

    nice -n 10 .venv/bin/python benchmarks/rt1_oracle_replay.py --episodes 10 --out outputs/rt1/replay
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

from vlarm.data.collect import run_oracle_episode
from vlarm.data.trajectories import ee_action_dict, run_ee_oracle_episode
from vlarm.envs import make_env
from vlarm.stats import format_ci, wilson_interval
from vlarm.tasks import SUCCESS_THRESHOLD
from vlarm.tasks.attributes import split_seed

FAMILIES = ["put-block-in-bowl-seen-colors", "packing-shapes", "packing-boxes-pairs-seen-colors",
            "stack-block-pyramid-seq-seen-colors", "assembling-kits-seq-seen-colors", "packing-seen-objects-seq",
            "towers-of-hanoi-seq-seen-colors"]


def cpu_minutes() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) / 60


def replay(env, seed: int, split: str, frames: list[dict]) -> float:
    env.reset(seed=seed, options={"split": split})
    total = 0.0
    for f in frames:
        action = ee_action_dict(f["action"])
        if action["terminate"]:
            break
        _, _, terminated, truncated, info = env.step(action)
        total = info["total_reward"]
        if terminated or truncated:
            break
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--split", default="val")
    parser.add_argument("--tasks", nargs="*", default=FAMILIES)
    parser.add_argument("--out", type=Path, default=Path("outputs/rt1/replay"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for task in args.tasks:
        start = cpu_minutes()
        pp = make_env(task, split=args.split, camera_scale=0.5, render_terminal=False)
        ee = make_env(task, action_mode="ee_delta", split=args.split, camera_scale=0.5)
        counts = {"pick_place": 0, "ee_delta": 0, "replay": 0, "both": 0}
        steps = []
        for i in range(args.episodes):
            seed = split_seed(args.split, i)
            _, pp_total = run_oracle_episode(pp, seed, args.split)
            frames, ee_total = run_ee_oracle_episode(ee, seed, args.split)
            rep_total = replay(ee, seed, args.split, frames)
            ok = [t > SUCCESS_THRESHOLD for t in (pp_total, ee_total, rep_total)]
            counts["pick_place"] += ok[0]
            counts["ee_delta"] += ok[1]
            counts["replay"] += ok[2]
            counts["both"] += ok[0] and ok[1]
            steps.append(len(frames))
        pp.close()
        ee.close()
        rows[task] = {**counts, "episodes": args.episodes, "mean_control_steps": sum(steps) / len(steps),
                      "cpu_minutes": cpu_minutes() - start}
        print(task, rows[task], flush=True)
        (args.out / "replay.json").write_text(json.dumps(rows, indent=2))
    lines = ["| task | episodes | pick-place oracle success % | ee_delta expert success % | replayed deltas success % "
             "| solved by both | mean control steps | CPU-min |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for task, r in rows.items():
        n = r["episodes"]
        cells = [format_ci(100 * r[k] / n, wilson_interval(r[k], n))
                 for k in ("pick_place", "ee_delta", "replay")]
        lines.append(f"| {task} | {n} | {' | '.join(cells)} | {r['both']} | {r['mean_control_steps']:.0f} | "
                     f"{r['cpu_minutes']:.1f} |")
    (args.out / "replay.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
