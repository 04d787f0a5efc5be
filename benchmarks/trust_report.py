"""The measured trustworthiness report of the shipped policy (issue 13), section by section, and its copy here.

Runs ``vlarm trust report`` on ``checkpoints/cliport-vlm-put-block-in-bowl`` (and its VLM) with the settings the
summary in ``benchmarks/RESULTS.md`` quotes, one section per call so each is written as soon as it is done, then
copies ``report.md``, ``report.json`` and the figures to ``benchmarks/trust_results/``::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/trust_report.py [--episodes 20] [--out outputs/trust/report]

About 20-25 CPU-minutes on one thread (each section's CPU-minutes are in the report).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from vlarm.trust.report import SECTIONS, TrustConfig, write_report

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run every section (or those given) and copy the report into ``benchmarks/trust_results``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "cliport-vlm-put-block-in-bowl"))
    parser.add_argument("--out", default=str(ROOT / "outputs" / "trust" / "report"))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--split", default="test")
    parser.add_argument("--section", action="append", choices=SECTIONS)
    args = parser.parse_args()
    cfg = TrustConfig(checkpoint=args.checkpoint, out=args.out, episodes=args.episodes, split=args.split)
    for section in args.section or ("safety", "fairness", "privacy", "adversarial", "robustness"):
        write_report(cfg, (section,))
    target = ROOT / "benchmarks" / "trust_results"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(args.out, target)
    print(f"copied to {target}")


if __name__ == "__main__":
    main()
