"""RT-1 sanity check (issue 11): can a policy reproduce a demonstration it was trained on?

Runs the checkpoint closed loop on the demonstration's own seed and compares each action with the recorded expert
action; reports the first step where they differ by more than ``--tol`` and the episode's final reward.

Usage:
    vlarm train --policy rt1 --task put-block-in-bowl-seen-colors --data DATA --demos 1 --steps 600 --out RUN
    python benchmarks/rt1_replay_check.py RUN/checkpoints/step_000600 DATA --episode 0
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow.parquet as pq

from vlarm.data._io import decode_png
from vlarm.envs import make_env
from vlarm.eval.rollout import CheckpointAgentFactory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data", help="the trajectory dataset the policy was trained on")
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--tol", type=float, default=0.004, help="largest per-dimension difference still 'the same'")
    args = parser.parse_args()
    path = f"{args.data}/data/chunk-000/file-{args.episode:03d}.parquet"
    table = pq.read_table(path)
    meta = json.loads(pq.read_schema(path).metadata[b"vlarm.trajectory"])
    actions = np.stack(table.column("action").to_pylist())
    first = decode_png(table.column("observation.images.front").to_pylist()[0]["bytes"])
    task = json.loads(open(f"{args.data}/meta/info.json").read())["benchmark_task"]
    factory = CheckpointAgentFactory(args.checkpoint)
    env = make_env(task, split="train", render_terminal=False, **factory.env_options)
    agent = factory(env)
    obs, _ = env.reset(seed=meta["seed"], options={"split": "train"})
    agent.reset()
    report = {"seed": meta["seed"], "demo_steps": len(actions),
              "first_frame_mean_abs_diff": float(np.abs(obs["rgb"].astype(int) - first.astype(int)).mean()),
              "first_divergence": None}
    total, steps = 0.0, 0
    for t in range(100_000):   # the env cuts a never-terminating episode at its own step limit
        action = agent.select_action(obs)
        vec = np.array([*np.ravel(action["translation"]), np.ravel(action["yaw"])[0], action["suction"],
                        action["terminate"]], dtype=float)
        if report["first_divergence"] is None and t < len(actions) and np.abs(vec - actions[t]).max() > args.tol:
            report["first_divergence"] = {"step": t, "policy": vec.round(4).tolist(),
                                          "demo": actions[t].round(4).tolist()}
        obs, reward, terminated, truncated, _ = env.step(action)
        total, steps = total + float(reward), t + 1
        if terminated or truncated:
            break
    env.close()
    report.update(total_reward=total, steps=steps)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
