"""Image preprocessing and text tokenisation that travel with each model (open_clip's pairing of a model
with its transform, so weights are never used with the wrong preprocessing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ImageTransform:
    """Turn one image into the model's input tensor.

    Accepts a PIL image, an ``(H, W)`` / ``(H, W, C)`` uint8 numpy array (C = 1, 3 or 4; alpha dropped,
    grey repeated to RGB) or a ``(C, H, W)`` float/uint8 tensor with values in [0, 255]. Output is a
    ``(3, size, size)`` float32 tensor ``(x - mean) / std`` with ``x`` in [0, 255]: the short side is resized
    to ``size`` (bilinear, antialiased) and the centre cropped, as in CLIP's preprocessing.

    Attributes:
        size: output side in pixels.
        mean: per-channel mean on the 0-255 scale.
        std: per-channel std on the 0-255 scale.
    """

    size: int
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def to_chw(self, image) -> torch.Tensor:
        """Return the image as a ``(3, H, W)`` float32 tensor in [0, 255] without resizing."""
        if isinstance(image, torch.Tensor):
            x = image.float()
            if x.ndim == 2:
                x = x[None]
        else:
            arr = np.asarray(image)
            if arr.ndim == 2:
                arr = arr[:, :, None]
            x = torch.tensor(arr, dtype=torch.float32).permute(2, 0, 1)
        if x.ndim != 3:
            raise ValueError(f"expected one image, got shape {tuple(x.shape)}")
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        elif x.shape[0] == 4:
            x = x[:3]
        elif x.shape[0] != 3:
            raise ValueError(f"expected 1, 3 or 4 channels, got {x.shape[0]}")
        return x

    def __call__(self, image) -> torch.Tensor:
        """Preprocess one image (see class docstring); returns ``(3, size, size)`` float32."""
        return self.batch(self.to_chw(image)[None])[0]

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocess a ``(B, 3, H, W)`` float batch in [0, 255]; returns ``(B, 3, size, size)`` float32."""
        x = images.float()
        h, w = x.shape[-2:]
        scale = self.size / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
        top, left = (nh - self.size) // 2, (nw - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size]
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std


class Tokenizer:
    """Wraps a Hugging Face tokenizer into open_clip's call convention.

    ``tokenizer(texts)`` returns a dict with ``input_ids`` and ``attention_mask``, both ``(N, L)`` int64,
    padded to the longest text and truncated to ``context_length``.
    """

    def __init__(self, hf_tokenizer, context_length: int, pad_to_context: bool = False):
        self.hf = hf_tokenizer
        self.context_length = int(context_length)
        self.pad_to_context = pad_to_context

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise one string or a list of N strings; see class docstring for the output."""
        if isinstance(texts, str):
            texts = [texts]
        enc = self.hf(
            list(texts),
            padding="max_length" if self.pad_to_context else True,
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}


def as_token_dict(tokens) -> dict[str, torch.Tensor]:
    """Normalise text input: a dict with ``input_ids`` (and optionally ``attention_mask``) or a bare
    ``(N, L)`` LongTensor (mask = all ones). Returns a dict with both keys."""
    if isinstance(tokens, torch.Tensor):
        return {"input_ids": tokens.long(), "attention_mask": torch.ones_like(tokens, dtype=torch.long)}
    ids = tokens["input_ids"]
    mask = tokens.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(ids)
    return {"input_ids": ids.long(), "attention_mask": mask.long()}
