"""Demo collection speed and peak memory on one core (issue 2's >= 35 episodes/minute target).

Usage:
    taskset -c 0 python benchmarks/bench_collect.py --episodes 20 [--camera-scale 1.0] [--renderer egl]
    python benchmarks/bench_collect.py --episodes 40 --workers 2      # both cores

Collects ``--episodes`` oracle demonstrations of put-block-in-bowl-seen-colors into a temporary dataset and
prints episodes/minute (wall and CPU, workers included), seconds per episode and the peak resident memory of the
process and of its largest worker. For the EGL renderer on a machine without a GPU, ``LP_NUM_THREADS=1`` keeps
Mesa's llvmpipe on one thread (a per-core figure).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

from vlarm.data.collect import collect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--task", default="put-block-in-bowl-seen-colors")
    parser.add_argument("--camera-scale", type=float, default=1.0)
    parser.add_argument("--renderer", default="tiny", help="tiny, egl or auto")
    parser.add_argument("--workers", type=int, default=1, help="rollout processes (vlarm collect --workers)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = collect(args.task, "train", args.episodes, tmp, camera_scale=args.camera_scale,
                         renderer=args.renderer, progress=False, workers=args.workers)
        wall = time.perf_counter() - wall0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() - cpu0 + children.ru_utime + children.ru_stime
    n = report.new_episodes + report.rejected
    result = {
        "task": args.task, "camera_scale": args.camera_scale, "renderer": args.renderer, "workers": args.workers,
        "episodes": n,
        "kept": report.new_episodes,
        "episodes_per_minute_wall": round(60 * n / wall, 1), "episodes_per_minute_cpu": round(60 * n / cpu, 1),
        "seconds_per_episode_wall": round(wall / n, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_mib_largest_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
