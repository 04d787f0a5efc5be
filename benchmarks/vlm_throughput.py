"""Training throughput (image-caption pairs per second) of the LiT model with and without locked-tower feature
caching (issue 3, item 3).

Both runs train the same heads with the same batches on Fashion-MNIST images with templated captions. Without
caching every step runs EfficientNet-Lite0 and MiniLM forward (no gradients, they are locked); with
caching the
tower outputs are computed once and every step only runs the heads. We report steady-state pairs/s
(steps only),
the one-off cache cost, and the end-to-end pairs/s for ``--epochs`` epochs (cache cost amortised).

Run: ``MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824
HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vlm_throughput.py``
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from _report import run_metadata

from vlarm.vlm import create_model_and_transforms
from vlarm.vlm.data import FASHION_MNIST_CLASSES, ArrayImageCaptionDataset, load_fashion_mnist
from vlarm.vlm.train import TrainConfig, train

RESULTS = Path(__file__).parent / "vlm_results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--uncached-steps", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=10, help="epochs for the end-to-end estimate")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a shared 2-core box)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y = load_fashion_mnist("train")
    x, y = x[: args.pairs], y[: args.pairs]
    ds = ArrayImageCaptionDataset(x, [f"a photo of a {FASHION_MNIST_CLASSES[c]}" for c in y])
    torch.manual_seed(0)
    base, tf, tok = create_model_and_transforms("lit-effnet-minilm", image_size=args.image_size)
    epochs_steps = args.epochs * -(-args.pairs // args.batch_size)
    cached = train(
        copy.deepcopy(base),
        tok,
        tf,
        ds,
        TrainConfig(epochs=args.epochs, batch_size=args.batch_size, cache_features=True, progress=False),
    )
    uncached = train(
        copy.deepcopy(base),
        tok,
        tf,
        ds,
        TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            cache_features=False,
            max_steps=args.uncached_steps,
            progress=False,
        ),
    )
    pairs_total = epochs_steps * args.batch_size
    cached_e2e = pairs_total / (cached.cache_seconds + pairs_total / cached.pairs_per_second)
    report = {
        **run_metadata("vlm_throughput.py", args),
        "model": "lit-effnet-minilm",
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "pairs": args.pairs,
        "cached": {
            "steady_pairs_per_second": cached.pairs_per_second,
            "cache_seconds": cached.cache_seconds,
            "end_to_end_pairs_per_second": cached_e2e,
        },
        "uncached": {"pairs_per_second": uncached.pairs_per_second, "steps_measured": args.uncached_steps},
        "speedup_steady": cached.pairs_per_second / uncached.pairs_per_second,
        "speedup_end_to_end": cached_e2e / uncached.pairs_per_second,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = [
        "# LiT training throughput: locked-tower feature caching",
        "",
        f"Command: `{report['command']}`",
        "",
        "| setting | pairs / s |",
        "|---|---|",
        f"| no caching (towers run every step) | {uncached.pairs_per_second:.1f} |",
        f"| caching, steady state (heads only) | {cached.pairs_per_second:.0f} |",
        f"| caching, end to end over {args.epochs} epochs (incl. {cached.cache_seconds:.1f} s cache fill) "
        f"| {cached_e2e:.1f} |",
        "",
        f"Speed-up: {report['speedup_steady']:.0f}x steady state, {report['speedup_end_to_end']:.1f}x "
        f"end to end. "
        f"{args.image_size} px inputs, batch {args.batch_size}, {args.pairs} pairs, {report['machine']}, "
        f"{report['torch_threads']} torch threads.",
    ]
    (args.out / "throughput.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
