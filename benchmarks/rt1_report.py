"""Render the RT-1 (issue 11) results as Markdown from the JSON files of ``rt1_table.py``, ``rt1_oracle_replay.py``
and the CLIPort evaluations on the same test seeds.

    .venv/bin/python benchmarks/rt1_report.py --out outputs/rt1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vlarm.stats import format_ci

#: RT-1 paper, Table 2 (seen / unseen / distractors / backgrounds, % success) and Table 7 (data diversity).
PAPER = {"seen": 97, "unseen": 76, "distractors": 83, "backgrounds": 59}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/rt1"))
    args = parser.parse_args()
    data = json.loads((args.out / "rt1_table.json").read_text())
    lines = ["| test | RT-1 here: score | RT-1 here: success % | episodes | mean control steps | CLIPort here: score "
             "| paper RT-1 success % | CPU-min (eval) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, row in data.items():
        if not key.startswith("eval/"):
            continue
        task = key.split("/")[3]
        cliport = args.out / "eval" / f"cliport__{task}" / "results.json"
        clip = "-"
        if cliport.is_file() and key.count("/") == 3 and "ablation" not in row["label"]:
            c = json.loads(cliport.read_text())
            clip = f"{format_ci(c['score'], c['score_ci'])} (n={c['episodes']})"
        paper = next((str(v) for k, v in PAPER.items() if row["label"].startswith(k)), "-")
        lines.append(f"| {row['label']} | {format_ci(row['score'], row['score_ci'])} | "
                     f"{format_ci(row['success_rate'], row['success_ci'])} | {row['episodes']} | "
                     f"{row['mean_steps']:.0f} | {clip} | {paper} | {row['cpu_minutes']:.1f} |")
    print("\n".join(lines))
    print()
    for key, row in data.items():
        if key.startswith(("train/", "collect/", "latency/")):
            print(f"- {key}: {json.dumps(row)}")
    replay = args.out / "replay" / "replay.md"
    if replay.is_file():
        print()
        print(replay.read_text())


if __name__ == "__main__":
    main()
