"""Synthetic pick-and-place episodes for the dataset tests (small images keep them fast)."""

from __future__ import annotations

import numpy as np
import pytest

SMALL = (32, 16)
TASK = "put-block-in-bowl-seen-colors"


def make_frame(rng: np.random.Generator, t: int, n: int, shape: tuple[int, int] = SMALL) -> dict:
    """One frame with random content; heightmaps carry arbitrary float32 bits to test exactness."""
    h, w = shape
    return {
        "colormap": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "heightmap": rng.uniform(0.0, 0.28, (h, w)).astype(np.float32),
        "state": rng.normal(size=7).astype(np.float32),
        "pick_pose": rng.normal(size=7).astype(np.float32),
        "place_pose": rng.normal(size=7).astype(np.float32),
        "reward": 1.0 / n,
        "done": t == n - 1,
        "instruction": f"put the {['red', 'blue', 'green'][t % 3]} blocks in a gray bowl",
    }


def make_episode(seed: int, shape: tuple[int, int] = SMALL) -> list[dict]:
    """A deterministic episode of 1-3 frames for ``seed``."""
    rng = np.random.default_rng(seed)
    n = 1 + seed % 3
    return [make_frame(rng, t, n, shape) for t in range(n)]


@pytest.fixture
def episode():
    return make_episode
