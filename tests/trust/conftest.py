"""Tiny models for the trust tests: a dual encoder whose frozen image tower has batch norm, and its classifier."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vlarm.trust.models import VLMClassifier
from vlarm.vlm.model import DualEncoder
from vlarm.vlm.transforms import ImageTransform


class TinyVLM(DualEncoder):
    """Conv + BatchNorm tower (locked) and a linear image head, on 16 x 16 images."""

    image_locked = True

    def __init__(self):
        super().__init__()
        self.visual = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.image_proj = nn.Linear(8, 6)

    def image_tower(self, images):
        return self.visual(images / 255.0)

    def image_head(self, feats):
        return self.image_proj(feats)

    def _locked_modules(self):
        return [self.visual]


def make_classifier(train_head: bool = False, seed: int = 0) -> VLMClassifier:
    """A 3-class VLMClassifier whose tower's BN statistics are non-trivial (moved by a few train-mode batches)."""
    torch.manual_seed(seed)
    model = TinyVLM()
    model.visual.train()
    with torch.no_grad():
        for _ in range(3):
            model.visual(torch.rand(8, 3, 16, 16))
    model.eval()
    weights = F.normalize(torch.randn(6, 3), dim=0)
    return VLMClassifier(model, ImageTransform(16), weights, ["a", "b", "c"], train_head=train_head)


def bn_state(module: nn.Module) -> dict:
    """Copies of every batch-norm buffer (running mean/var, batches tracked)."""
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.fixture
def classifier():
    return make_classifier()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(12, 3, 16, 16, generator=g)
