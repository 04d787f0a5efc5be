"""Where does a closed-loop (ee_delta) policy go? A graded look at episodes that score 0 (issue 11).

Success says only whether a block ended in the right bowl. This runs a checkpoint closed loop on val seeds and
records, per episode, how close the suction tip came (in x-y, metres) to a block the instruction names and to any
other graspable object, whether suction ever held an object, and whether that object was a named one. A policy
that has learned *where* the named block is gets close to it; one that plays a mean trajectory does not.

    python benchmarks/rt1_trace.py CHECKPOINT --task put-block-in-bowl-seen-colors --episodes 10 \
        --out outputs/rt1-dart1000/trace/step_NNNNNN.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from vlarm.envs import make_env
from vlarm.eval.rollout import CheckpointAgentFactory
from vlarm.tasks.attributes import split_seed


def trace_episode(env, agent, seed: int, split: str) -> dict:
    """One closed-loop episode; distances are x-y metres between the tip and object bases.

    Returns:
        ``{"seed", "total_reward", "steps", "closest_named_m", "closest_other_m", "held_any", "held_named"}``.
    """
    obs, info = env.reset(seed=seed, options={"split": split})
    agent.reset()
    scene = env.scene
    named = set(env.task.goals[0].objects) if env.task.goals else set()
    others = scene.graspable() - named
    best = {"named": np.inf, "other": np.inf}
    held_any = held_named = False
    total, steps = 0.0, 0
    while True:
        action = agent.select_action(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        total, steps = total + float(reward), steps + 1
        tip = obs["state"][:2]
        for key, bodies in (("named", named), ("other", others)):
            for body in bodies:
                best[key] = min(best[key], float(np.linalg.norm(scene.pose(body)[0][:2] - tip)))
        held = scene.arm.grasped_body
        held_any |= held is not None
        held_named |= held in named
        if terminated or truncated:
            break
    return {"seed": seed, "instruction": info["instruction"], "total_reward": total, "steps": steps,
            "closest_named_m": best["named"], "closest_other_m": best["other"], "held_any": held_any,
            "held_named": held_named}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--task", default="put-block-in-bowl-seen-colors")
    parser.add_argument("--split", default="val")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    factory = CheckpointAgentFactory(args.checkpoint)
    env = make_env(args.task, split=args.split, render_terminal=False, camera_scale=0.5, **factory.env_options)
    agent = factory(env)
    start = time.process_time()
    episodes = [trace_episode(env, agent, split_seed(args.split, i), args.split) for i in range(args.episodes)]
    env.close()
    named = np.array([e["closest_named_m"] for e in episodes])
    summary = {"checkpoint": args.checkpoint, "task": args.task, "split": args.split, "episodes": len(episodes),
               "median_closest_named_m": float(np.median(named)),
               "within_2cm_of_named": int((named < 0.02).sum()),
               "median_closest_other_m": float(np.median([e["closest_other_m"] for e in episodes])),
               "held_any": int(sum(e["held_any"] for e in episodes)),
               "held_named": int(sum(e["held_named"] for e in episodes)),
               "successes": int(sum(e["total_reward"] > 0.99 for e in episodes)),
               "cpu_minutes": (time.process_time() - start) / 60, "per_episode": episodes}
    print(json.dumps({k: v for k, v in summary.items() if k != "per_episode"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
