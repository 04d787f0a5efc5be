"""Tiny configs and a synthetic dataset for the policy tests (fast on 2 CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlarm.policies.processing import yaw_to_quat
from vlarm.sim.heightmap import pixel_to_xyz

TINY_SHAPE = (64, 32)
TINY = {
    "image_shape": TINY_SHAPE,
    "n_rotations": 8,
    "crop_size": 16,
    "widths": (4, 8, 8, 8),
    "transport_dim": 4,
}
TINY_CLIPORT = {**TINY, "semantic_widths": (4, 8, 8, 8), "text_encoder": "hash", "backbone_pretrained": True}


def tiny_overrides(name: str) -> dict:
    """Config overrides of a tiny policy of the given type."""
    return dict(TINY_CLIPORT if name == "cliport" else TINY)


def make_frame(pick_px=(10, 8), place_px=(50, 24), yaw=np.pi / 2, instruction="put the red block in a blue bowl"):
    """A synthetic frame: a red 5x5 block at the pick pixel, a blue 7x7 'bowl' at the place pixel."""
    h, w = TINY_SHAPE
    colormap = np.full((h, w, 3), 30, dtype=np.uint8)
    heightmap = np.zeros((h, w), dtype=np.float32)
    r, c = pick_px
    colormap[r - 2 : r + 3, c - 2 : c + 3] = (220, 20, 20)
    heightmap[r - 2 : r + 3, c - 2 : c + 3] = 0.04
    r, c = place_px
    colormap[r - 3 : r + 4, c - 3 : c + 4] = (20, 20, 220)
    heightmap[r - 3 : r + 4, c - 3 : c + 4] = 0.02
    pick_pose = np.concatenate([pixel_to_xyz(np.array(pick_px)), yaw_to_quat(0.0)]).astype(np.float32)
    place_pose = np.concatenate([pixel_to_xyz(np.array(place_px)), yaw_to_quat(yaw)]).astype(np.float32)
    return {
        "colormap": colormap,
        "heightmap": heightmap,
        "instruction": instruction,
        "pick_pose": pick_pose,
        "place_pose": place_pose,
        "episode_index": 0,
        "frame_index": 0,
    }


class FakeEpisodeDataset:
    """In-memory stand-in for ``vlarm.data.EpisodeDataset`` (same interface)."""

    def __init__(self, episodes: list[list[dict]]):
        self.episodes = episodes
        self.frames = [
            dict(f, episode_index=e, frame_index=i) for e, ep in enumerate(episodes) for i, f in enumerate(ep)
        ]
        self.info = {"total_episodes": len(episodes), "total_frames": len(self.frames)}

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def stats(self) -> dict:
        """``meta/stats.json``-style stats of the frames (what ``EpisodeDataset.stats`` returns)."""
        from vlarm.data.info import COLOR_KEY, HEIGHTMAP_KEY
        from vlarm.data.stats import episode_stats

        return episode_stats({COLOR_KEY: np.stack([f["colormap"] for f in self.frames]),
                              HEIGHTMAP_KEY: np.stack([f["heightmap"] for f in self.frames])})

    def select_episodes(self, n: int) -> FakeEpisodeDataset:
        return FakeEpisodeDataset(self.episodes[:n])

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        return self.frames[i]


@pytest.fixture
def fake_dataset() -> FakeEpisodeDataset:
    """Three one- or two-step episodes of synthetic frames."""
    return FakeEpisodeDataset(
        [
            [make_frame()],
            [make_frame((20, 20), (40, 10), 0.0), make_frame((30, 6), (12, 25), np.pi)],
            [make_frame((44, 16), (14, 16), np.pi / 4, "put the green block in a red bowl")],
        ]
    )


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # 2 threads crawl when other jobs share the 2 cores
    yield


@pytest.fixture(scope="session")
def lit_checkpoint(tmp_path_factory):
    """A LiT dual encoder (real pretrained towers, untrained 16-d heads, 32 px input) saved as a vlarm VLM
    checkpoint: the grounding model of CLIPort's VLM semantic stream in tests."""
    from vlarm.vlm import create_model_and_transforms, save_checkpoint

    torch.manual_seed(0)
    model, _, _ = create_model_and_transforms("lit-effnet-minilm", image_size=32, embed_dim=16)
    return save_checkpoint(model, tmp_path_factory.mktemp("vlm") / "lit")
