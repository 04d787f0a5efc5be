"""Oracle success on seeded test episodes of every task variant (issue 8: > 0.99 on at least 95 of 100 each).

Usage:
    python benchmarks/oracle_eval.py --episodes 100 --out runs/oracle [--tasks T1 T2 ...] [--workers 2]

Equivalent to ``vlarm eval --policy oracle --task T --split test --episodes 100 --out DIR`` for each variant. Each
variant's results are kept in ``DIR/<task>/results.json``; a rerun reuses variants already evaluated with the same
episode count, so the table can be built up across sessions. Prints a Markdown table (solved / episodes, score with
its 95% interval, mean steps, seconds per episode, failed seeds) and writes it to ``DIR/oracle.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _report import run_metadata

from vlarm.eval import OracleAgent, evaluate
from vlarm.stats import format_ci
from vlarm.tasks import SUCCESS_THRESHOLD, list_tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--tasks", nargs="+", default=None, help="task variants (default: every registered one)")
    parser.add_argument("--out", type=Path, default=Path("runs/oracle"))
    parser.add_argument("--workers", type=int, default=1, help="processes (vlarm.parallel); results are identical")
    args = parser.parse_args()
    rows = []
    for task in args.tasks or list_tasks():
        cached = args.out / task / "results.json"
        res = json.loads(cached.read_text()) if cached.is_file() else None
        if res is None or res.get("episodes") != args.episodes:
            kwargs = {"workers": args.workers} if args.workers > 1 else {}
            res = evaluate(OracleAgent, task, "test", args.episodes, args.out / task, label="oracle", **kwargs)
        solved = sum(r["total_reward"] > SUCCESS_THRESHOLD for r in res["per_episode"])
        failed = [(r["seed"], round(r["total_reward"], 3)) for r in res["per_episode"]
                  if r["total_reward"] <= SUCCESS_THRESHOLD]
        rows.append({"task": task, "episodes": res["episodes"], "solved": solved, "score": res["score"],
                     "score_ci": res["score_ci"], "mean_steps": res["mean_steps"],
                     "seconds_per_episode": res["seconds"] / res["episodes"], "failed_seeds": failed})
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| task | solved (reward > 0.99) | score [95% CI] | mean steps | s/episode | failed seeds (reward) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        failed = ", ".join(f"{s} ({v})" for s, v in r["failed_seeds"][:8]) + (" ..." if len(r["failed_seeds"]) > 8
                                                                               else "")
        lines.append(f"| {r['task']} | {r['solved']}/{r['episodes']} | {format_ci(r['score'], r['score_ci'])} | "
                     f"{r['mean_steps']:.1f} | {r['seconds_per_episode']:.1f} | {failed or '-'} |")
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "oracle.md").write_text(table)
    (args.out / "oracle.json").write_text(json.dumps({**run_metadata("oracle_eval.py", args), "rows": rows},
                                                     indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
