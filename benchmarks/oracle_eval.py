"""Oracle success on 100 seeded test episodes of each put-block-in-bowl variant (issue 2: >= 99/100).

Usage:
    python benchmarks/oracle_eval.py --episodes 100 --out benchmarks/results/oracle

Equivalent to ``vlarm eval --policy oracle --task T --split test --episodes 100 --out DIR`` for each variant.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vlarm.eval import OracleAgent, evaluate

TASKS = ("put-block-in-bowl-seen-colors", "put-block-in-bowl-unseen-colors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/oracle"))
    args = parser.parse_args()
    rows = []
    for task in TASKS:
        res = evaluate(OracleAgent, task, "test", args.episodes, args.out / task, label="oracle")
        solved = sum(r["total_reward"] > 0.99 for r in res["per_episode"])
        failed = [(r["seed"], r["total_reward"]) for r in res["per_episode"] if r["total_reward"] <= 0.99]
        rows.append({"task": task, "episodes": res["episodes"], "solved": solved, "score": res["score"],
                     "score_ci": res["score_ci"], "success_ci": res["success_ci"], "failed_seeds": failed})
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
