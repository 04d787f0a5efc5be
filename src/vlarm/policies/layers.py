"""Network building blocks of the pick-and-place policies.

``SpatialStream`` is the Transporter-style fully convolutional "where" stream on the 6-channel RGB-D input
(Zeng et al., CoRL 2020, Sec. 4 uses an hourglass ResNet; here a thin U-Net that downsamples early, so it is
fast on CPU). ``SemanticDecoder`` is CLIPort's "what" stream decoder (Shridhar et al., CoRL 2021, Sec. 3.2):
frozen pretrained image features, multiplicative language fusion at every decoder stage, and lateral connections from
the spatial stream. Both return features at stride 2 of the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 (keeps size at stride 1, halves it at stride 2)."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)


def _up2(x: torch.Tensor) -> torch.Tensor:
    # Nearest: much cheaper than bilinear on CPU (forward and backward); the following 3x3 conv smooths.
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class SpatialStream(nn.Module):
    """Thin U-Net over the RGB-D input (Transporter's FCN, CLIPort's spatial stream).

    Args:
        in_channels: input channels (6 for RGB + height x3).
        widths: channels at strides 2, 4, 8, 16 (e.g. ``(16, 32, 64, 64)``).
        out_dim: channels of the output head.

    ``forward(x)`` takes ``(B, in_channels, H, W)`` float (H, W divisible by 16) and returns
    ``(out, laterals)``: ``out`` is ``(B, out_dim, H/2, W/2)``; ``laterals`` is the list of decoder features
    at strides 16, 8, 4, 2 with ``widths[3], widths[2], widths[1], widths[0]`` channels.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], out_dim: int):
        super().__init__()
        self.down = nn.ModuleList()
        self.refine = nn.ModuleList()
        prev = in_channels
        for i, width in enumerate(widths):
            self.down.append(conv3x3(prev, width, stride=2))
            # The stride-2 stage is the most expensive per channel, so it gets a single conv.
            self.refine.append(conv3x3(width, width) if i > 0 else nn.Identity())
            prev = width
        self.reduce = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in range(len(widths) - 1))
        self.fuse = nn.ModuleList(conv3x3(widths[i], widths[i]) for i in range(len(widths) - 1))
        self.head = nn.Conv2d(widths[0], out_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """See the class docstring."""
        skips = []
        for down, refine in zip(self.down, self.refine, strict=True):
            x = F.relu(down(x))
            if not isinstance(refine, nn.Identity):
                x = F.relu(x + refine(x))
            skips.append(x)
        laterals = [x]
        for i in range(len(skips) - 2, -1, -1):
            x = _up2(self.reduce[i](x)) + skips[i]  # 1x1 conv commutes with upsampling
            x = F.relu(x + self.fuse[i](x))
            laterals.append(x)
        return self.head(x), laterals


class LangFusion(nn.Module):
    """Multiplicative language fusion (CLIPort Sec. 3.2): ``x * (W l + b)`` tiled over space.

    Initialised to the identity (W = 0, b = 1), as FiLM layers are in RT-1, so training starts from the purely
    visual network and learns how language gates each channel.

    Args:
        lang_dim: sentence embedding size (384 for MiniLM).
        channels: channels of the fused feature map.
    """

    def __init__(self, lang_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(lang_dim, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.ones_(self.proj.bias)

    def forward(self, x: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, h, w)``; ``lang``: ``(B, lang_dim)`` -> ``(B, C, h, w)``."""
        return x * self.proj(lang)[:, :, None, None]


class SemanticDecoder(nn.Module):
    """CLIPort "what" stream decoder with language fusion and lateral connections (CLIPort Sec. 3.2, Fig. 2).

    Args:
        backbone_channels: channels of the frozen backbone features at strides 2, 4, 8, 16, 32.
        widths: decoder channels at strides 2, 4, 8, 16.
        lateral_widths: spatial-stream channels at strides 2, 4, 8, 16 (the lateral inputs).
        lang_dim: sentence embedding size.
        out_dim: output channels.
        grounding_dim: channels of optional full-resolution grounding maps (e.g. a VLM's phrase relevance,
            :mod:`vlarm.vlm.grounding`); each decoder stage adds a 1x1 convolution of them, average-pooled to
            its stride. 0: none.

    ``forward(feats, lang, laterals, grounding=None)``: ``feats`` = backbone maps at strides 2..32
    (``(B, c_i, H/s, W/s)``), ``lang`` = ``(B, lang_dim)``, ``laterals`` = spatial-stream features at strides
    16, 8, 4, 2, ``grounding`` = ``(B, grounding_dim, H, W)`` float. Returns ``(B, out_dim, H/2, W/2)``.
    """

    def __init__(
        self,
        backbone_channels: tuple[int, ...],
        widths: tuple[int, ...],
        lateral_widths: tuple[int, ...],
        lang_dim: int,
        out_dim: int,
        grounding_dim: int = 0,
    ):
        super().__init__()
        n = len(widths)
        self.ground = nn.ModuleList(nn.Conv2d(grounding_dim, widths[i], 1) for i in range(n)) if grounding_dim else None
        self.top = nn.Conv2d(backbone_channels[-1], widths[-1], 1)
        self.top_lang = LangFusion(lang_dim, widths[-1])
        ins = [widths[i + 1] if i + 1 < n else widths[-1] for i in range(n)]
        self.reduce = nn.ModuleList(nn.Conv2d(ins[i], widths[i], 1) for i in range(n))
        self.skip = nn.ModuleList(nn.Conv2d(backbone_channels[i], widths[i], 1) for i in range(n))
        self.lateral = nn.ModuleList(nn.Conv2d(lateral_widths[i], widths[i], 1) for i in range(n))
        self.conv = nn.ModuleList(conv3x3(widths[i], widths[i]) for i in range(n))
        self.lang = nn.ModuleList(LangFusion(lang_dim, widths[i]) for i in range(n))
        self.head = nn.Conv2d(widths[0], out_dim, 1)

    def forward(
        self,
        feats: list[torch.Tensor],
        lang: torch.Tensor,
        laterals: list[torch.Tensor],
        grounding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """See the class docstring.

        Raises:
            ValueError: grounding maps given to a decoder built without them, or missing when it needs them.
        """
        if (grounding is None) != (self.ground is None):
            raise ValueError("grounding maps must be passed exactly when the decoder has grounding_dim > 0")
        x = self.top_lang(F.relu(self.top(feats[-1])), lang)
        n = len(self.conv)
        for j, i in enumerate(range(n - 1, -1, -1)):
            x = _up2(self.reduce[i](x)) + self.skip[i](feats[i]) + self.lateral[i](laterals[j])
            if self.ground is not None:
                x = x + self.ground[i](F.avg_pool2d(grounding, 2 ** (i + 1)))
            x = self.lang[i](F.relu(x + self.conv[i](x)), lang)
        return self.head(x)
