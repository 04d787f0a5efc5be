"""Every family's example instruction through `vlarm run` with the oracle policy, with a video each (issue 8).

Usage:
    python benchmarks/run_examples.py --out outputs/examples

Runs ``vlarm run "<example>" --policy oracle --seed 0 --video OUT/<family>.mp4 --json OUT/<family>.json`` for every
family (``vlarm.tasks.family_example``), with no ``--task``: the instruction is routed to its family. Prints a
Markdown table (family, routed task, success, reward, steps, video) and writes it to ``OUT/examples.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from vlarm.tasks import family_example, list_families


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/examples"))
    parser.add_argument("--families", nargs="+", default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    vlarm = str(Path(sys.executable).with_name("vlarm"))
    lines = ["| family | instruction | routed task | success | total reward | steps | video |",
             "|---|---|---|---|---|---|---|"]
    for family in args.families or list(list_families()):
        example = family_example(family)
        video, record = args.out / f"{family}.mp4", args.out / f"{family}.json"
        proc = subprocess.run([vlarm, "run", example, "--policy", "oracle", "--seed", "0", "--video", str(video),
                               "--json", str(record)], capture_output=True, text=True)
        if proc.returncode != 0 or not record.is_file():
            lines.append(f"| {family} | {example} | - | error: {proc.stdout.strip().splitlines()[-1:]} | - | - | - |")
            continue
        rec = json.loads(record.read_text())
        lines.append(f"| {family} | {example} | {rec['task']} | {rec['success']} | {rec['total_reward']:.2f} | "
                     f"{len(rec['steps'])} | {video} ({video.stat().st_size // 1024} KiB) |")
        print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    (args.out / "examples.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
