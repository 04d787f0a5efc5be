"""A ``torch.utils.data.Dataset`` over an :class:`~vlarm.data.EpisodeDataset` (kept apart so that
importing :mod:`vlarm.data` does not import torch)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vlarm.data.reader import EpisodeDataset


class TorchEpisodeDataset(Dataset):
    """Frames of an :class:`EpisodeDataset` with arrays as tensors, layouts unchanged.

    Items: ``colormap`` uint8 tensor (H, W, 3) RGB, ``heightmap`` float32 (H, W) metres, ``state`` /
    ``pick_pose`` / ``place_pose`` float32 (7,) (xyz metres + quaternion xyzw); ``instruction`` str,
    ``reward`` float, ``done`` bool, ``episode_index`` / ``frame_index`` int (the default collate
    stacks tensors and numbers and lists strings). Models convert images to CxHxW float themselves.

    Args:
        dataset: the dataset (or a :meth:`~EpisodeDataset.select_episodes` view) to wrap.
    """

    def __init__(self, dataset: EpisodeDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        frame = self.dataset[i]
        return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in frame.items()}
