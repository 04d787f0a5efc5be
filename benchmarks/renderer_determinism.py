"""Is a renderer's image a function of the scene? (issue 10, session 17)

For each renderer and each of ``--seeds`` train seeds ``s`` (s >= 1), the colour map and heightmap of
``reset(seed s)`` in an env that has just run ``reset(seed s - 1)`` are compared with those of a fresh env's
``reset(seed s)``. TinyRenderer gives identical bytes; PyBullet's EGL plugin (Mesa llvmpipe) does not, because of
z-fighting stripes on the table whose pattern depends on the simulator's history.

    python benchmarks/renderer_determinism.py --seeds 3 --out outputs/renderer_determinism.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vlarm.envs import make_env
from vlarm.sim.cameras import RENDERERS, egl_available
from vlarm.tasks.attributes import split_seed

TASK = "put-block-in-bowl-seen-colors"


def compare(renderer: str, seeds: int, camera_scale: float) -> list[dict]:
    """Per seed: max absolute colour-map difference (grey levels) and heightmap difference (m), reused vs fresh."""
    reused = make_env(TASK, camera_scale=camera_scale, renderer=renderer)
    rows = []
    try:
        for i in range(1, seeds + 1):
            reused.reset(seed=split_seed("train", i - 1))
            a, _ = reused.reset(seed=split_seed("train", i))
            fresh = make_env(TASK, camera_scale=camera_scale, renderer=renderer)
            try:
                b, _ = fresh.reset(seed=split_seed("train", i))
            finally:
                fresh.close()
            rows.append({"seed": split_seed("train", i),
                         "colormap_max_abs_diff": int(np.abs(a["colormap"].astype(int) - b["colormap"]).max()),
                         "heightmap_max_abs_diff_m": float(np.abs(a["heightmap"] - b["heightmap"]).max())})
    finally:
        reused.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--camera-scale", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("outputs/renderer_determinism.json"))
    args = parser.parse_args()
    renderers = [r for r in RENDERERS if r != "egl" or egl_available()]
    result = {r: compare(r, args.seeds, args.camera_scale) for r in renderers}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r, rows in result.items():
        print(r, [(row["colormap_max_abs_diff"], row["heightmap_max_abs_diff_m"]) for row in rows])


if __name__ == "__main__":
    main()
