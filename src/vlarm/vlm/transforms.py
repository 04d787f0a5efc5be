"""Image preprocessing and text tokenisation that travel with each model (open_clip's pairing of a model
with its transform, so weights are never used with the wrong preprocessing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Resize modes of open_clip's ``PreprocessCfg.resize_mode`` (``open_clip.transform.image_transform``).
RESIZE_MODES = ("shortest", "longest", "squash")
#: Interpolations: open_clip's ``PreprocessCfg.interpolation`` ('random' means bicubic at inference).
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class ImageTransform:
    """Turn one image into the model's input tensor (open_clip's inference preprocessing).

    Accepts a PIL image, an ``(H, W)`` / ``(H, W, C)`` uint8 numpy array (C = 1, 3 or 4; alpha dropped,
    grey repeated to RGB) or a ``(C, H, W)`` float/uint8 tensor with values in [0, 255]. Output is a
    ``(3, size, size)`` float32 tensor (``(3, H, W)`` when ``size`` is ``(H, W)``) ``(x - mean) / std`` with
    ``x`` in [0, 255]. The geometry follows open_clip's ``image_transform(is_train=False)`` (torchvision's
    ``Resize`` / ``CenterCrop`` sizes and offsets), by ``resize_mode``:

    - ``"shortest"`` (CLIP's): resize so the image covers the output (square output: short side = size, long
      side ``int(size * long / short)``), then centre-crop;
    - ``"longest"``: resize so the image fits inside the output (aspect kept), then centre-pad with ``fill``;
    - ``"squash"``: resize to the output size exactly (aspect not kept).

    Resampling is ``interpolation`` ("bilinear" or "bicubic", antialiased when shrinking, as torchvision and
    PIL do); bicubic results are clamped to [0, 255] as PIL's uint8 output is. Pixels are not rounded to
    integers, so values can differ from open_clip's PIL path by interpolation round-off (< 1 grey level).

    Attributes:
        size: output side in pixels, or ``(H, W)``.
        mean: per-channel mean on the 0-255 scale.
        std: per-channel std on the 0-255 scale.
        resize_mode: one of :data:`RESIZE_MODES`.
        interpolation: one of :data:`INTERPOLATIONS`.
        fill: padding value on the 0-255 scale (``"longest"`` only; open_clip's ``fill_color``).

    Raises:
        ValueError: an unknown ``resize_mode`` / ``interpolation`` or a non-positive size (on construction).
    """

    size: int | tuple[int, int]
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize_mode: str = "shortest"
    interpolation: str = "bilinear"
    fill: float = 0.0

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if min(self.output_hw) <= 0:
            raise ValueError(f"image size must be positive, got {self.size!r}")

    @property
    def output_hw(self) -> tuple[int, int]:
        """Output ``(H, W)`` in pixels."""
        if isinstance(self.size, tuple | list):
            return int(self.size[0]), int(self.size[1])
        return int(self.size), int(self.size)

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
        """Preprocess one image (see class docstring); returns ``(3, H, W)`` float32."""
        return self.batch(self.to_chw(image)[None])[0]

    def resized_hw(self, h: int, w: int) -> tuple[int, int]:
        """Size ``(H, W)`` an ``h`` x ``w`` image is resized to before cropping / padding (torchvision's rules)."""
        th, tw = self.output_hw
        if self.resize_mode == "squash":
            return th, tw
        if self.resize_mode == "shortest" and th == tw:
            # torchvision Resize(int): the short side becomes the size, the long side is truncated.
            short, long = min(h, w), max(h, w)
            new_long = int(th * long / short)
            return (th, new_long) if h <= w else (new_long, th)
        # open_clip's ResizeKeepRatio: longest=1 fits inside, longest=0 covers the output.
        ratio_h, ratio_w = h / th, w / tw
        ratio = max(ratio_h, ratio_w) if self.resize_mode == "longest" else min(ratio_h, ratio_w)
        return round(h / ratio), round(w / ratio)

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocess a ``(B, 3, H, W)`` float batch in [0, 255]; returns ``(B, 3, H', W')`` float32."""
        x = images.float()
        h, w = x.shape[-2:]
        nh, nw = self.resized_hw(h, w)
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode=self.interpolation, align_corners=False,
                              antialias=nh < h or nw < w)
            if self.interpolation == "bicubic":
                x = x.clamp(0.0, 255.0)
        x = _center_crop_or_pad(x, *self.output_hw, fill=self.fill if self.resize_mode == "longest" else 0.0)
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std


def _center_crop_or_pad(x: torch.Tensor, th: int, tw: int, fill: float = 0.0) -> torch.Tensor:
    """torchvision's ``CenterCrop`` / open_clip's ``center_crop_or_pad`` on a ``(..., H, W)`` tensor."""
    h, w = x.shape[-2:]
    if th > h or tw > w:
        left, top = max(tw - w, 0) // 2, max(th - h, 0) // 2
        right, bottom = (max(tw - w, 0) + 1) // 2, (max(th - h, 0) + 1) // 2
        x = F.pad(x, (left, right, top, bottom), value=fill)
        h, w = x.shape[-2:]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return x[..., top : top + th, left : left + tw]


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
