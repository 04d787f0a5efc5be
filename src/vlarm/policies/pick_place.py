"""Shared pick-and-place policy: attention (pick) head, transport (place) head, losses and action decoding.

Transporter (Zeng et al., CoRL 2020, Sec. 3) and CLIPort (Shridhar et al., CoRL 2021, Sec. 3) differ only in
the networks that produce the attention logits and the key/query features; everything else lives here once:

* pick: ``(B, H, W)`` logits, cross-entropy over pixels (Transporter Eq. 1);
* place: key features cross-correlated with rotated query features of a crop around the pick pixel ->
  ``(B, n_rotations, H, W)`` logits, cross-entropy over rotations x pixels (Transporter Eq. 3);
* ``select_action``: argmax pick pixel (identity rotation), argmax place (rotation bin, pixel), z from the heightmap.

Networks run at stride 2 (160 x 80 for the CLIPort workspace); logits are bilinearly upsampled to full resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from vlarm.policies.base import Policy
from vlarm.policies.processing import (
    COLOR_MEAN,
    COLOR_STD,
    DEPTH_MEAN,
    DEPTH_STD,
    bin_to_yaw,
    make_network_input,
    pixel_to_pose,
    yaw_to_bin_torch,
)
from vlarm.policies.transport import transport_logits
from vlarm.sim.cameras import RENDERER, check_renderer

#: Stride of the feature maps the heads work on, relative to the heightmap.
FEATURE_STRIDE = 2


@dataclass
class PickPlaceConfig:
    """Hyper-parameters shared by the pick-and-place policies.

    Attributes:
        image_shape: heightmap ``(H, W)`` in pixels; both must be divisible by 32 (CLIPort workspace: 320 x 160).
        n_rotations: place rotation bins about +z; bin ``k`` is yaw ``2*pi*k/n`` (Transporter: 36).
        crop_size: side in full-resolution pixels of the query crop around the pick (Transporter: 64).
        widths: FCN channels at strides 2, 4, 8, 16. Thin at high resolution for CPU speed.
        transport_dim: channels of the key and query feature maps that are cross-correlated (Ravens uses 3).
        transport_stride: resolution of the cross-correlation relative to the heightmap (2 or 4). The FCNs
            output stride-2 features; at 4 they are average-pooled once more, which makes the FFT correlation
            over 36 rotations ~4x cheaper at the cost of 1.25 cm correlation cells (logits are upsampled bilinearly).
        color_mean / color_std: per-channel mean / std of colormap values scaled to [0, 1], used to normalise
            the network input. Defaults: Ravens' constants (what checkpoints written before these fields
            existed were trained with); ``vlarm train`` sets the training dataset's own ``meta/stats.json``
            values (:func:`vlarm.policies.processing.normalization_from_stats`).
        depth_mean / depth_std: mean / std of heightmap values in metres (same provenance).
        tasks: the benchmark tasks the policy was trained on (``vlarm train`` records them: one, or several for
            multi-task training); empty when not recorded (checkpoints written before this field existed).
            Evaluating on another task is allowed (a generalisation test) and warned about.
        renderer: the renderer of the images the policy learned from (``"tiny"`` or ``"egl"``; ``vlarm train``
            records the dataset's). Evaluation and ``vlarm run`` render with it
            (:func:`vlarm.policies.base.policy_env_options`). Default ``"tiny"``: what every checkpoint written
            before this field learned from.
        camera_scale: resolution of the cameras whose images the policy learned from, relative to 480 x 640
            (``vlarm collect --camera-scale``; ``vlarm train`` records the dataset's). The heightmap's density
            depends on it, so evaluation and ``vlarm run`` render at it unless told otherwise, and warn when told
            otherwise (:func:`vlarm.policies.base.env_options_at_scale`). None: not recorded (checkpoints written
            before this field existed; evaluated at 1.0, ``vlarm collect``'s default).
    """

    image_shape: tuple[int, int] = (320, 160)
    n_rotations: int = 36
    crop_size: int = 64
    widths: tuple[int, ...] = (16, 32, 64, 64)
    transport_dim: int = 8
    transport_stride: int = 4
    color_mean: tuple[float, float, float] = (COLOR_MEAN,) * 3
    color_std: tuple[float, float, float] = (COLOR_STD,) * 3
    depth_mean: float = DEPTH_MEAN
    depth_std: float = DEPTH_STD
    tasks: tuple[str, ...] = ()
    renderer: str = RENDERER
    camera_scale: float | None = None

    def __post_init__(self) -> None:
        """Validate shapes, normalisation statistics, the renderer and the camera scale.

        Raises:
            ValueError: on an image size not divisible by 32, non-positive sizes, statistics that are not
                3 (colour) finite numbers with positive std, an unknown renderer, or a camera scale that is not a
                finite number > 0.
        """
        check_renderer(self.renderer)
        if self.camera_scale is not None:
            if not (isinstance(self.camera_scale, int | float) and math.isfinite(self.camera_scale)
                    and self.camera_scale > 0):
                raise ValueError(f"camera_scale must be a finite number > 0 (or None), got {self.camera_scale!r}")
            self.camera_scale = float(self.camera_scale)
        self.image_shape = tuple(int(v) for v in self.image_shape)
        self.color_mean = tuple(float(v) for v in self.color_mean)
        self.color_std = tuple(float(v) for v in self.color_std)
        stats = [*self.color_mean, *self.color_std, self.depth_mean, self.depth_std]
        if len(self.color_mean) != 3 or len(self.color_std) != 3 or not all(math.isfinite(v) for v in stats) \
                or min(*self.color_std, self.depth_std) <= 0:
            raise ValueError(f"normalisation statistics must be finite with std > 0 (3 colour channels): "
                             f"color_mean={self.color_mean}, color_std={self.color_std}, "
                             f"depth_mean={self.depth_mean}, depth_std={self.depth_std}")
        self.widths = tuple(int(v) for v in self.widths)
        self.tasks = tuple(str(t) for t in self.tasks)
        if any(v % 32 for v in self.image_shape):
            raise ValueError(f"image_shape {self.image_shape} must be divisible by 32")
        if self.n_rotations < 1 or self.crop_size < 2 or self.transport_dim < 1:
            raise ValueError("n_rotations, crop_size and transport_dim must be positive")
        if self.transport_stride not in (2, 4):
            raise ValueError(f"transport_stride must be 2 or 4, got {self.transport_stride}")

    @property
    def crop_cells(self) -> int:
        """Odd query-crop side in correlation cells (``crop_size / transport_stride + 1``)."""
        return self.crop_size // self.transport_stride + 1


def pick_loss(logits: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over pixels (Transporter Eq. 1).

    Args:
        logits: ``(B, H, W)`` float.
        pixels: ``(B, 2)`` int64 ``(row, col)`` targets.

    Returns:
        Scalar mean loss.
    """
    w = logits.shape[-1]
    return F.cross_entropy(logits.flatten(1), pixels[:, 0] * w + pixels[:, 1])


def place_loss(logits: torch.Tensor, pixels: torch.Tensor, rotation_bins: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over rotations x pixels (Transporter Eq. 3).

    Args:
        logits: ``(B, R, H, W)`` float.
        pixels: ``(B, 2)`` int64 ``(row, col)`` targets.
        rotation_bins: ``(B,)`` int64 targets in ``[0, R)``.

    Returns:
        Scalar mean loss.
    """
    _, _, h, w = logits.shape
    return F.cross_entropy(logits.flatten(1), rotation_bins * (h * w) + pixels[:, 0] * w + pixels[:, 1])


def argmax_pixel(logits: torch.Tensor) -> tuple[int, ...]:
    """Unravelled index of the maximum of a logits tensor (e.g. ``(H, W)`` -> (row, col), ``(R, H, W)`` ->
    (k, row, col))."""
    return tuple(int(v) for v in np.unravel_index(int(torch.argmax(logits)), tuple(logits.shape)))


class PickPlacePolicy(Policy):
    """Base of the two-head pick-and-place policies; subclasses provide the networks.

    Subclasses implement :meth:`attention_features` and :meth:`transport_features`, and may extend
    :meth:`prepare` (e.g. language embeddings, frozen backbone features).
    """

    uses_language: ClassVar[bool] = False

    # ---------------------------------------------------------------- hooks
    def prepare(self, batch: dict) -> dict:
        """Turn a batch (see :meth:`forward`) into network inputs: ``{"image": (B, 6, H, W) float32}`` plus extras."""
        c = self.config
        return {"image": make_network_input(batch["colormap"], batch["heightmap"], c.color_mean, c.color_std,
                                            c.depth_mean, c.depth_std)}

    def attention_features(self, inputs: dict) -> torch.Tensor:
        """``(B, 1, H/2, W/2)`` pick logits at feature resolution."""
        raise NotImplementedError

    def transport_features(self, inputs: dict) -> torch.Tensor:
        """``(B, 2 * transport_dim, H/2, W/2)``: key channels first, then query channels."""
        raise NotImplementedError

    def frozen_features(self, colormap: torch.Tensor) -> list[torch.Tensor] | None:
        """Features of frozen pretrained parts for ``(B, H, W, 3)`` uint8 colormaps, for caching (None if none)."""
        return None

    def embed_instructions(self, instructions: list[str]) -> torch.Tensor | None:
        """``(B, D)`` float32 instruction embeddings (None for language-free policies)."""
        return None

    def grounding_maps(
        self, colormap: torch.Tensor, heightmap: torch.Tensor, instructions: list[str]
    ) -> torch.Tensor | None:
        """``(B, K, H, W)`` float32 maps that depend on the frame and its instruction only, for caching (e.g. a
        VLM's phrase relevance, CLIPort with a grounding model); None if the policy uses none."""
        return None

    # ---------------------------------------------------------------- heads
    def pick_logits_lowres(self, inputs: dict) -> torch.Tensor:
        """``(B, H/2, W/2)`` pick logits at feature resolution (one cell = 2 x 2 pixels)."""
        return self.attention_features(inputs)[:, 0]

    def place_logits_lowres(self, inputs: dict, pick_pixel: torch.Tensor) -> torch.Tensor:
        """``(B, n_rotations, H/s, W/s)`` place logits at the correlation stride ``s = transport_stride``.

        Args:
            inputs: output of :meth:`prepare`.
            pick_pixel: ``(B, 2)`` int64 full-resolution (row, col) pick pixels (the crop centres).
        """
        d = self.config.transport_dim
        feats = self.transport_features(inputs)
        stride = self.config.transport_stride
        if stride != FEATURE_STRIDE:
            feats = F.avg_pool2d(feats, stride // FEATURE_STRIDE)
        key, query = feats[:, :d], feats[:, d:]
        return transport_logits(key, query, pick_pixel // stride, self.config.crop_cells, self.config.n_rotations)

    def pick_logits(self, inputs: dict) -> torch.Tensor:
        """``(B, H, W)`` float pick logits at full resolution (Transporter Sec. 3.1), bilinearly upsampled."""
        low = self.pick_logits_lowres(inputs)[:, None]
        return F.interpolate(low, size=self.config.image_shape, mode="bilinear", align_corners=False)[:, 0]

    def place_logits(self, inputs: dict, pick_pixel: torch.Tensor) -> torch.Tensor:
        """``(B, n_rotations, H, W)`` float place logits given ``(B, 2)`` int64 pick pixels (Transporter Sec. 3.2)."""
        low = self.place_logits_lowres(inputs, pick_pixel)
        return F.interpolate(low, size=self.config.image_shape, mode="bilinear", align_corners=False)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Pick + place cross-entropy on a training batch (place uses the ground-truth pick pixel).

        The losses are computed on the logits at network resolution (the label cell is the pixel divided by
        the stride), which is what the full-resolution heatmaps are interpolated from, and avoids back-propagating
        through a 36 x 320 x 160 upsampling.

        Args:
            batch: ``"colormap"`` uint8 ``(B, H, W, 3)``, ``"heightmap"`` float32 ``(B, H, W)`` metres,
                ``"pick_pixel"`` / ``"place_pixel"`` int64 ``(B, 2)`` (row, col), ``"place_rotation"`` float32
                ``(B,)`` radians (place yaw minus pick yaw), ``"instruction"`` list of B strings; optional
                precomputed ``"lang_embedding"`` ``(B, D)`` and ``"backbone_features"`` (list of maps).

        Returns:
            ``(loss, {"loss", "pick_loss", "place_loss"})`` with a scalar loss tensor and float diagnostics.
        """
        inputs = self.prepare(batch)
        pick_px = batch["pick_pixel"].long()
        place_px = batch["place_pixel"].long()
        bins = yaw_to_bin_torch(batch["place_rotation"], self.config.n_rotations)
        l_pick = pick_loss(self.pick_logits_lowres(inputs), pick_px // FEATURE_STRIDE)
        place = self.place_logits_lowres(inputs, pick_px)
        l_place = place_loss(place, place_px // self.config.transport_stride, bins)
        loss = l_pick + l_place
        return loss, {"loss": loss.item(), "pick_loss": l_pick.item(), "place_loss": l_place.item()}

    @torch.no_grad()
    def select_action(self, observation: dict, instruction: str | None = None, return_info: bool = False) -> dict:
        """Pick and place poses for one observation (Transporter Sec. 3; CLIPort Sec. 3.3).

        Args:
            observation: ``"colormap"`` ``(H, W, 3)`` uint8, ``"heightmap"`` ``(H, W)`` float32 metres above
                the table, ``"instruction"`` str (other keys are ignored).
            instruction: overrides ``observation["instruction"]`` when given.
            return_info: also return heatmaps under ``"info"``.

        Returns:
            ``{"pick_pose": (7,) float32, "place_pose": (7,) float32}`` (xyz metres + quaternion xyzw; pick
            has the identity rotation, place the yaw of the chosen bin), plus with ``return_info`` an
            ``"info"`` dict with ``"pick_logits"`` ``(H, W)``, ``"place_logits"`` ``(R, H, W)`` float32
            numpy, ``"pick_pixel"``, ``"place_pixel"`` (row, col) and ``"place_rotation_bin"``.
        """
        was_training = self.training
        self.eval()
        text = instruction if instruction is not None else observation.get("instruction", "")
        heightmap = np.asarray(observation["heightmap"], dtype=np.float32)
        device = self.device
        batch = {
            "colormap": torch.as_tensor(np.asarray(observation["colormap"], dtype=np.uint8))[None].to(device),
            "heightmap": torch.from_numpy(heightmap)[None].to(device),
            "instruction": [text or ""],
        }
        inputs = self.prepare(batch)
        pick = self.pick_logits(inputs)[0].cpu()
        pick_rc = argmax_pixel(pick)
        place = self.place_logits(inputs, torch.tensor([pick_rc], dtype=torch.long, device=device))[0].cpu()
        k, row, col = argmax_pixel(place)
        yaw = float(bin_to_yaw(k, self.config.n_rotations))
        yaw = math.atan2(math.sin(yaw), math.cos(yaw))
        action = {
            "pick_pose": pixel_to_pose(np.array(pick_rc), heightmap),
            "place_pose": pixel_to_pose(np.array([row, col]), heightmap, yaw),
        }
        if return_info:
            action["info"] = {
                "pick_logits": pick.numpy().astype(np.float32),
                "place_logits": place.numpy().astype(np.float32),
                "pick_pixel": pick_rc,
                "place_pixel": (row, col),
                "place_rotation_bin": k,
            }
        self.train(was_training)
        return action
