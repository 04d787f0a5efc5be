"""What the MIAVLM benchmark scripts share: the flags that describe the simulator benchmark, and building it."""

from __future__ import annotations

import argparse

from vlarm.eval.qa.benchmark import BenchmarkConfig, build_benchmark
from vlarm.vlm.qa.dataset import QABenchmark


def add_benchmark_args(parser: argparse.ArgumentParser, default_scenes: int = 400) -> None:
    """The benchmark's directory and its :class:`vlarm.eval.qa.benchmark.BenchmarkConfig` fields as flags."""
    parser.add_argument("--benchmark", default="data/miavlm-qa64-v2")
    parser.add_argument("--scenes", type=int, default=default_scenes)
    parser.add_argument("--unseen-scenes", type=int, default=40)
    parser.add_argument("--face-probability", type=float, default=1.0)
    parser.add_argument("--face-hidden-probability", type=float, default=0.8)
    parser.add_argument("--occluder-probability", type=float, default=0.5)


def build(args: argparse.Namespace) -> tuple[QABenchmark, dict]:
    """Build (or reuse, when its settings match) the benchmark the flags describe; ``(benchmark, split counts)``."""
    config = BenchmarkConfig(scenes=args.scenes, unseen_scenes=args.unseen_scenes,
                             face_probability=args.face_probability,
                             face_hidden_probability=args.face_hidden_probability,
                             occluder_probability=args.occluder_probability)
    counts = build_benchmark(args.benchmark, config, progress=False)["splits"]
    return QABenchmark(args.benchmark), counts
