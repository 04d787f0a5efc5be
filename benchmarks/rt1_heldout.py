"""Teacher-forced action-token loss and accuracy of RT-1 checkpoints on held-out expert trajectories (issue 11).

A low-variance companion to closed-loop val success: with 20 val episodes and scores near zero, closed-loop
selection cannot tell checkpoints or training-data variants apart, while the token cross-entropy on a few thousand
held-out frames can (it is what RT-1 trains on, scored on seeds it never saw).

    vlarm collect --action-mode ee_delta --task T --split val --episodes 50 --expert-noise 0.01 --camera-scale 0.5 \
        --renderer tiny --out outputs/rt1-dart1000/data-val/T
    python benchmarks/rt1_heldout.py --data outputs/rt1-dart1000/data-val/T [--data ...] \
        --checkpoint RUN/checkpoints/step_008000 [--checkpoint ...] --out outputs/rt1-dart1000/heldout.json

Each (checkpoint, dataset) pair is one JSON row (loss in nats per token, token accuracy, frames, CPU-seconds);
rows already in ``--out`` for the same checkpoint files (SHA-256) are kept, so a rerun resumes. ``--table`` prints
the rows of ``--out`` as a Markdown table (one line per checkpoint, one column pair per dataset; the loss with its
95% bootstrap interval over episodes) and exits; with ``--paired BASE`` each line also gives the paired per-episode
loss difference to checkpoint BASE on the same episodes (negative: lower loss than BASE), with its interval.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vlarm.data.trajectories import Trajectories
from vlarm.eval.selection import checkpoint_fingerprint
from vlarm.policies import load_policy
from vlarm.policies.rt1.training import heldout_token_metrics
from vlarm.stats import mean_interval


def markdown(rows: list[dict], paired: str | None = None) -> str:
    """One line per checkpoint (in first-seen order): per dataset, ``loss [95% interval] / token accuracy`` and,
    with ``paired``, the mean per-episode loss difference to that base [95% interval] (module docstring)."""
    datasets = list(dict.fromkeys(r["data"] for r in rows))
    by = {(r["checkpoint"], r["data"]): r for r in rows}
    head = "| checkpoint | " + " | ".join(f"{Path(d).name}: loss [95% CI] / token acc." + (
        f" | {Path(d).name}: loss - base" if paired else "") for d in datasets) + " |"
    lines = [head, "|---|" + "---:|" * (len(datasets) * (2 if paired else 1))]
    for ckpt in dict.fromkeys(r["checkpoint"] for r in rows):
        cells = []
        for d in datasets:
            r = by.get((ckpt, d))
            if r is None:
                cells += ["-"] * (2 if paired else 1)
                continue
            low, high = mean_interval(r["episode_loss"])
            cells.append(f"{r['loss']:.3f} [{low:.3f}, {high:.3f}] / {r['token_accuracy']:.3f}")
            if paired:
                base_ckpt = str(Path(paired) / "checkpoints" / Path(ckpt).name) \
                    if (Path(paired) / "checkpoints").is_dir() else paired
                base = by.get((base_ckpt, d))
                if base is None or ckpt == base_ckpt:
                    cells.append("-")
                else:
                    diff = np.subtract(r["episode_loss"], base["episode_loss"])
                    low, high = mean_interval(diff)
                    cells.append(f"{diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(f"| {ckpt} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", default=[], help="RT-1 checkpoint directory (repeat)")
    parser.add_argument("--data", action="append", default=[], help="held-out trajectory dataset (repeat)")
    parser.add_argument("--table", action="store_true", help="print --out as a Markdown table and exit")
    parser.add_argument("--paired", help="with --table: a checkpoint to compare every other one with, per episode")
    parser.add_argument("--out", required=True, help="JSON file of rows (resumed)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.is_file() else []
    if args.table:
        print(markdown(rows, args.paired))
        return
    for ckpt in args.checkpoint:
        fingerprint = checkpoint_fingerprint(ckpt)
        policy = None
        for data_dir in args.data:
            if any(r["checkpoint"] == ckpt and r["data"] == data_dir and r["fingerprint"] == fingerprint
                   and "episode_loss" in r for r in rows):
                continue
            rows = [r for r in rows if not (r["checkpoint"] == ckpt and r["data"] == data_dir)]   # stale
            policy = policy or load_policy(ckpt)
            cpu = time.process_time()
            metrics = heldout_token_metrics(policy, Trajectories.open(data_dir), batch_size=args.batch_size)
            rows.append({"checkpoint": ckpt, "data": data_dir, "fingerprint": fingerprint, **metrics,
                         "cpu_seconds": round(time.process_time() - cpu, 1)})
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=1) + "\n")
            print(f"{ckpt}  {Path(data_dir).name}: loss {metrics['loss']:.4f}, token accuracy "
                  f"{metrics['token_accuracy']:.4f} ({metrics['frames']} frames, {rows[-1]['cpu_seconds']} CPU-s)",
                  flush=True)


if __name__ == "__main__":
    main()
