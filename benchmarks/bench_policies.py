"""Train-step time and ``select_action`` latency of the pick-and-place policies on CPU.

Usage (set the allocator variables first, see the Makefile)::

    python benchmarks/bench_policies.py --threads 2 --batch-sizes 1 2 4

``cliport-vlm`` is CLIPort with the VLM semantic stream (``--semantic-vlm``, grounding maps in both streams).

A train step is what ``vlarm.policies.training.train`` does per iteration: sample frames, SE(2)-augment images,
labels and cached frozen features, forward pick + place, backward, AdamW update. Timings are medians over
``--steps`` iterations after warm-up, so a busy machine shows up as spread between median and max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from vlarm.policies import make_policy
from vlarm.policies.processing import yaw_to_quat
from vlarm.policies.training import FrameStore
from vlarm.sim.heightmap import pixel_to_xyz


def synthetic_frames(n: int, seed: int = 0, objects: int = 6) -> list[dict]:
    """``n`` random tabletop-like frames (320 x 160) with ``objects`` blocks/bowls and pick/place poses."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        colormap = np.full((320, 160, 3), 40, dtype=np.uint8)
        heightmap = np.zeros((320, 160), dtype=np.float32)
        centres = rng.integers([20, 20], [300, 140], size=(objects, 2))
        for r, c in centres:
            colormap[r - 6 : r + 7, c - 6 : c + 7] = rng.integers(0, 255, 3)
            heightmap[r - 6 : r + 7, c - 6 : c + 7] = rng.uniform(0.01, 0.05)
        pick = np.concatenate([pixel_to_xyz(centres[0]), yaw_to_quat(0.0)])
        place = np.concatenate([pixel_to_xyz(centres[1]), yaw_to_quat(float(rng.uniform(0, 6.28)))])
        frames.append(
            {
                "colormap": colormap,
                "heightmap": heightmap,
                "instruction": "put the red blocks in a green bowl",
                "pick_pose": pick.astype(np.float32),
                "place_pose": place.astype(np.float32),
            }
        )
    return frames


def bench(
    name: str, batch_sizes: list[int], steps: int, semantic_vlm: str = "checkpoints/lit-sim-all-colors",
    objects: int = 6,
) -> list[dict]:
    """Measure one policy (a name, ``cliport-vlm``, or a checkpoint directory); returns one row per batch size plus
    the select_action latency on scenes of ``objects`` objects."""
    torch.manual_seed(0)
    if os.path.isdir(name):
        from vlarm.policies import load_policy

        policy = load_policy(name)
        policy.train()
    elif name == "cliport-vlm":
        policy = make_policy("cliport", grounding_model=semantic_vlm, text_encoder="vlm", grounding_fusion="both")
    else:
        policy = make_policy(name)
    n_params = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    frames = synthetic_frames(16, objects=objects)
    store = FrameStore(frames, policy, cache_features=True)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    rng = np.random.default_rng(0)
    rows = []
    for bs in batch_sizes:
        times = []
        for i in range(steps + 2):
            start = time.perf_counter()
            batch = store.batch(rng.integers(0, len(store), size=bs), rng, np.radians(60), 20.0)
            loss, _ = policy(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 2:
                times.append(time.perf_counter() - start)
        rows.append(
            {
                "policy": name,
                "what": f"train step, batch {bs}",
                "median_ms": 1e3 * statistics.median(times),
                "max_ms": 1e3 * max(times),
                "per_frame_ms": 1e3 * statistics.median(times) / bs,
                "params": n_params,
                "objects": objects,
            }
        )
    policy.eval()
    obs = frames[0]
    policy.select_action(obs)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        policy.select_action(obs)
        times.append(time.perf_counter() - start)
    rows.append(
        {
            "policy": name,
            "what": "select_action",
            "median_ms": 1e3 * statistics.median(times),
            "max_ms": 1e3 * max(times),
            "per_frame_ms": 1e3 * statistics.median(times),
            "params": n_params,
            "objects": objects,
        }
    )
    return rows


def main() -> None:
    """Parse arguments, run the benchmarks and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=["transporter", "cliport"],
                        help="policy names, cliport-vlm, or checkpoint directories")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--semantic-vlm", default="checkpoints/lit-sim-all-colors", help="VLM of cliport-vlm")
    parser.add_argument("--objects", type=int, default=6, help="objects per synthetic scene")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [row for name in args.policies
            for row in bench(name, args.batch_sizes, args.steps, args.semantic_vlm, args.objects)]
    print(f"threads={args.threads}  load average before/after: {os.getloadavg()[0]:.2f}")
    print("| policy | measurement | objects | median ms | max ms | ms per frame | trainable params |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['policy']} | {r['what']} | {r['objects']} | {r['median_ms']:.0f} | {r['max_ms']:.0f} "
            f"| {r['per_frame_ms']:.0f} | {r['params'] / 1e6:.2f}M |"
        )


if __name__ == "__main__":
    main()
