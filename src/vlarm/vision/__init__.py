"""Pretrained image backbones behind a small interface (EfficientNet-Lite0, ImageNet weights)."""

from vlarm.vision.efficientnet import EfficientNetLite0Features, load_efficientnet_lite0

__all__ = ["EfficientNetLite0Features", "load_efficientnet_lite0"]
