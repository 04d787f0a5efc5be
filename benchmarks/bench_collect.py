"""Oracle demonstration collection speed with 1, 2, ... Ray workers per task (issue 8: episodes/minute and speed-up).

Usage:
    python benchmarks/bench_collect.py --tasks put-block-in-bowl-seen-colors --episodes 30 --out bench.json
    python benchmarks/bench_collect.py --tasks stack-block-pyramid-seq packing-shapes --workers 1 2 4 --out b.json

``--tasks`` takes task names or family names (a family means its seen-colours variant, or its only one). For
every task and worker count, ``vlarm.data.collect.collect`` gathers ``--episodes`` successful demonstrations into a
fresh temporary dataset. Reported per run: episodes per minute of wall time (kept and rejected episodes, the work
done), seconds per episode, the seeds rejected, and the speed-up over the first worker count. These are steady-state
figures: before any timing Ray is started and its workers are built by a one-episode warm-up collection (each
worker process imports vlarm and builds its simulator once; ``vlarm.parallel`` reuses them from call to call), and
those one-off costs are reported apart (``ray_start_seconds``, ``worker_start_seconds``: what a one-shot
``vlarm collect --workers N`` pays on top). Every run of a task must write the same dataset (the first N
successful seeds, same frames): ``identical_datasets`` compares every file byte for byte.

CPU: ``cpu_seconds`` is this process's CPU time plus the workers' over the run (workers are reused from the
warm-up, so their counters cover exactly the run; Ray's own daemons are not counted), ``cores_obtained`` = CPU /
wall. On a machine shared with other jobs the wall figures move with the load, so the speed-up reads together
with the cores each run obtained; ``episodes_per_cpu_minute`` is the load-independent cost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from vlarm import parallel
from vlarm.data.collect import collect
from vlarm.tasks import list_families, list_tasks


def resolve_task(name: str) -> str:
    """A task name, or a family name meaning its seen-attributes variant (else its first); ValueError lists the
    families."""
    if name in list_tasks():
        return name
    families = list_families()
    if name in families:
        variants = families[name]
        return next((v for v in variants if "-seen-" in v), variants[0])
    raise ValueError(f"unknown task or family {name!r}; families: {', '.join(families)}")


def dataset_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes (two datasets are identical iff the digests match)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def bench_task(task: str, episodes: int, workers: list[int], camera_scale: float, renderer: str) -> dict:
    """Collect ``episodes`` demonstrations of ``task`` with each worker count; returns the task's JSON entry."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        for n in workers:
            root = Path(tmp) / f"workers-{n}"
            cpu0 = time.process_time() + sum(parallel.idle_worker_cpu_seconds())
            start = time.perf_counter()
            report = collect(task, "train", episodes, root, camera_scale=camera_scale, renderer=renderer,
                             progress=False, workers=n)
            wall = time.perf_counter() - start
            cpu = time.process_time() + sum(parallel.idle_worker_cpu_seconds()) - cpu0
            done = report.new_episodes + report.rejected
            runs.append({"workers": n, "kept": report.new_episodes, "rejected": report.rejected,
                         "seconds": round(wall, 2), "episodes_per_minute": round(60 * done / wall, 1),
                         "seconds_per_episode": round(wall / done, 3), "cpu_seconds": round(cpu, 2),
                         "cores_obtained": round(cpu / wall, 2),
                         "episodes_per_cpu_minute": round(60 * done / cpu, 1), "digest": dataset_digest(root)})
    base = runs[0]["episodes_per_minute"]
    for run in runs:
        run["speedup"] = round(run["episodes_per_minute"] / base, 2)
    return {"task": task, "runs": runs, "identical_datasets": len({r.pop("digest") for r in runs}) == 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["put-block-in-bowl-seen-colors"],
                        help="task or family names")
    parser.add_argument("--episodes", type=int, default=30, help="successful episodes per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--camera-scale", type=float, default=1.0)
    parser.add_argument("--renderer", default="tiny", help="tiny, egl or auto")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    tasks = [resolve_task(t) for t in args.tasks]
    for n in args.workers:
        parallel.check_workers(n)

    ray_start = worker_start = 0.0
    if max(args.workers) > 1:
        start = time.perf_counter()
        parallel.init_ray(max(args.workers))
        ray_start = time.perf_counter() - start
        with tempfile.TemporaryDirectory(prefix="bench-collect-warmup-") as tmp:
            start = time.perf_counter()
            collect(tasks[0], "train", 1, tmp, camera_scale=args.camera_scale, renderer=args.renderer,
                    progress=False, workers=max(args.workers))
            worker_start = time.perf_counter() - start
    try:
        results = [bench_task(t, args.episodes, args.workers, args.camera_scale, args.renderer) for t in tasks]
    finally:
        parallel.shutdown()
    out = {"episodes": args.episodes, "camera_scale": args.camera_scale, "renderer": args.renderer,
           "cpus": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
           "ray_start_seconds": round(ray_start, 2), "worker_start_seconds": round(worker_start, 2),
           "peak_rss_mib_driver": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "tasks": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
