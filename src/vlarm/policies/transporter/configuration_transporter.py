"""Configuration of the Transporter policy (Zeng et al., CoRL 2020)."""

from __future__ import annotations

from dataclasses import dataclass

from vlarm.policies.pick_place import PickPlaceConfig


@dataclass
class TransporterConfig(PickPlaceConfig):
    """Transporter hyper-parameters; all of them are those of
    :class:`~vlarm.policies.pick_place.PickPlaceConfig`.

    Attributes:
        image_shape: heightmap ``(H, W)`` pixels (320 x 160 = CLIPort workspace at 3.125 mm).
        n_rotations: place rotation bins (36, i.e. 10 degrees).
        crop_size: query crop side in pixels (64).
        widths: FCN channels at strides 2, 4, 8, 16 (16, 32, 64, 64).
        transport_dim: key/query feature channels (8).
        transport_stride: stride of the place cross-correlation (4).
    """
