"""Transporter Networks (Zeng et al., CoRL 2020, Sec. 3): attention FCN for the pick, key/query FCN for the place.

The input is the 6-channel RGB-D heightmap image (:func:`vlarm.policies.processing.make_network_input`). One
FCN predicts pick logits; a second FCN outputs key and query features whose cross-correlation over 36
rotations
of the
query crop gives the place logits (:mod:`vlarm.policies.transport`). No language: this is the
"Transporter-only" baseline of CLIPort Table 1.
"""

from __future__ import annotations

import torch

from vlarm.policies.base import register_policy
from vlarm.policies.layers import SpatialStream
from vlarm.policies.pick_place import PickPlacePolicy
from vlarm.policies.transporter.configuration_transporter import TransporterConfig


@register_policy
class TransporterPolicy(PickPlacePolicy):
    """Transporter pick-and-place policy.

    Args:
        config: :class:`TransporterConfig` (defaults if None).

    See :class:`~vlarm.policies.pick_place.PickPlacePolicy` for ``forward`` / ``select_action``.
    """

    name = "transporter"
    config_class = TransporterConfig

    def __init__(self, config: TransporterConfig | None = None):
        super().__init__(config or TransporterConfig())
        cfg = self.config
        self.attention = SpatialStream(6, cfg.widths, 1)
        self.transport = SpatialStream(6, cfg.widths, 2 * cfg.transport_dim)

    def attention_features(self, inputs: dict) -> torch.Tensor:
        """``(B, 1, H/2, W/2)`` pick logits from the attention FCN on ``inputs["image"]``."""
        return self.attention(inputs["image"])[0]

    def transport_features(self, inputs: dict) -> torch.Tensor:
        """``(B, 2 * transport_dim, H/2, W/2)`` key then query features."""
        return self.transport(inputs["image"])[0]
