import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_SCRATCH = dict(
    embed_dim=32,
    image_size=16,
    patch_size=8,
    vision_width=32,
    vision_layers=1,
    vision_heads=2,
    text_width=32,
    text_layers=1,
    text_heads=2,
    context_length=24,
)


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """These tests run many tiny ops; on a shared 2-core machine two threads spin-wait and run ~5x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def lit(one_torch_thread):
    """LiT model with real pretrained towers at a tiny input size (32 px), plus transform and tokenizer."""
    from vlarm.vlm import create_model_and_transforms

    torch.manual_seed(0)
    return create_model_and_transforms("lit-effnet-minilm", image_size=32, embed_dim=64)


@pytest.fixture()
def scratch():
    from vlarm.vlm import create_model_and_transforms

    torch.manual_seed(0)
    return create_model_and_transforms("scratch-vit-tiny", **TINY_SCRATCH)


@pytest.fixture()
def toy_pairs():
    """The :func:`make_toy_pairs` function."""
    return make_toy_pairs


def make_toy_pairs(n: int = 16, seed: int = 0):
    """n coloured 12x12 squares with captions naming the colour."""
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
    rng = np.random.default_rng(seed)
    names = list(colours)
    images, captions = [], []
    for i in range(n):
        name = names[i % len(names)]
        img = np.zeros((12, 12, 3), np.uint8) + rng.integers(0, 30, (12, 12, 3), dtype=np.uint8)
        img[2:10, 2:10] = colours[name]
        images.append(img)
        captions.append(f"a {name} square")
    return np.stack(images), captions
