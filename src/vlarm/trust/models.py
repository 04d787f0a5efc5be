"""One interface for "a VLM" and one for "a policy", as the trust measurements see them.

Every measurement in :mod:`vlarm.trust` takes one of two things:

* :class:`VLMClassifier` - an ``nn.Module`` mapping images with pixel values in [0, 1] to class logits, with the
  model's own preprocessing (resize and normalisation) *inside* ``forward``, so attack budgets are in pixel units
  (eps = 8/255 changes a uint8 pixel by at most 8 grey levels), the convention of torchattacks and ART
  (``clip_values=(0, 1)``). Built from any vlarm dual encoder (:func:`vlarm.vlm.create_model_and_transforms`) and
  a list of class names: zero-shot classification as in CLIP (Radford et al. 2021, Sec. 3.1.4). Its image
  projection head can be trained (adversarial training, DP training, re-weighting); the image tower stays frozen.
* :class:`HeatmapPolicy` - a pick-and-place policy (Transporter, CLIPort, or a later one with the same
  ``prepare`` / ``pick_logits_lowres`` / ``place_logits_lowres`` hooks) seen as a classifier over heatmap cells of
  one observation: input the ``(B, 3, H, W)`` colour map in [0, 1], output the flattened pick logits (or the place
  logits for a fixed pick). Attacking it moves the argmax pick / place.

Anything else (the planner, RT-1, the attribute-QA model) joins by providing the same two shapes: an
``nn.Module`` with ``forward(x in [0, 1]) -> logits`` for attacks and per-sample losses, and a
``select_action(observation, instruction)`` agent for rollouts (:mod:`vlarm.trust.robustness`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlarm.vlm.evaluate import zero_shot_classifier
from vlarm.vlm.model import DualEncoder

#: Colour and object words of the simulator VLM's zero-shot classes ("a red block", ...).
TEMPLATES = ("a {}", "a {} on a table", "a top-down view of a {}", "the {}")


class VLMClassifier(nn.Module):
    """Zero-shot image classifier on top of a dual encoder, pixel normalisation inside.

    ``forward(x)``: ``(B, 3, H, W)`` float in [0, 1] -> ``(B, C)`` float logits
    ``s * normalize(image_head(image_tower(T(255 x)))) @ W`` where ``T`` is the model's image transform
    (resize + ``(x - mean) / std``), ``W`` the ``(D, C)`` zero-shot class embeddings (fixed buffer) and ``s`` the
    model's logit scale (CLIP Sec. 3.1.4). The tower runs *with* autograd (so white-box attacks get input
    gradients) but its parameters are frozen: no gradient ever reaches them.

    Args:
        model: a dual encoder with ``image_tower`` / ``image_head``.
        transform: its :class:`~vlarm.vlm.transforms.ImageTransform`.
        class_weights: ``(D, C)`` float unit-norm class embeddings (:func:`vlarm.vlm.evaluate.zero_shot_classifier`).
        classnames: the C class names, for reports.
        train_head: make the image head's parameters trainable (everything else is frozen).

    Raises:
        ValueError: ``class_weights`` not 2-D or not matching ``classnames``.
    """

    def __init__(self, model: DualEncoder, transform, class_weights: torch.Tensor, classnames: Sequence[str],
                 train_head: bool = False):
        super().__init__()
        if class_weights.ndim != 2 or class_weights.shape[1] != len(classnames):
            raise ValueError(f"class_weights must be (D, {len(classnames)}), got {tuple(class_weights.shape)}")
        self.model = model
        self.transform = transform
        self.classnames = list(classnames)
        self.register_buffer("class_weights", class_weights.detach().clone().float())
        self.scale = float(model.logit_multiplier)
        for prm in model.parameters():
            prm.requires_grad_(False)
        if train_head:
            for prm in self.head_parameters():
                prm.requires_grad_(True)
        self.model.eval()

    @classmethod
    def from_pretrained(cls, name_or_path: str, classnames: Sequence[str], templates: Sequence[str] = TEMPLATES,
                        train_head: bool = False) -> VLMClassifier:
        """Load a dual encoder with :func:`vlarm.vlm.create_model_and_transforms` and build its zero-shot classes.

        Raises:
            FileNotFoundError / vlarm.vlm.checkpoint.CheckpointError: as ``create_model_and_transforms``.
        """
        from vlarm.vlm.factory import create_model_and_transforms

        model, transform, tokenizer = create_model_and_transforms(name_or_path)
        weights = zero_shot_classifier(model, tokenizer, list(classnames), list(templates))
        return cls(model, transform, weights, classnames, train_head=train_head)

    def head_parameters(self) -> list[nn.Parameter]:
        """The image projection head's parameters (what adversarial / DP training may change)."""
        head = getattr(self.model, "image_proj", None)
        if head is None:
            raise ValueError(f"{type(self.model).__name__} has no separate image projection head to train")
        return list(head.parameters())

    def tower_modules(self) -> list[nn.Module]:
        """The frozen image tower (for checks: no gradient and unchanged batch-norm statistics)."""
        return [getattr(self.model, "visual", self.model)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, F)`` frozen tower features (differentiable w.r.t. ``x``)."""
        return self.model.image_tower(self.transform.batch(255.0 * x))

    def logits_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, F)`` tower features -> ``(B, C)`` logits through the (possibly trained) head."""
        emb = F.normalize(self.model.image_head(feats), dim=-1)
        return self.scale * emb @ self.class_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """See the class docstring."""
        return self.logits_from_features(self.features(x))

    def train(self, mode: bool = True) -> VLMClassifier:
        """Train/eval mode for the head; the frozen tower always stays in eval mode (fixed BN statistics)."""
        super().train(mode)
        for module in self.tower_modules():
            module.eval()
        return self


class HeatmapPolicy(nn.Module):
    """A pick-and-place policy on one fixed observation, as a classifier over heatmap cells.

    ``forward(x)``: ``(B, 3, H, W)`` float colour maps in [0, 1] (the observation's ``colormap`` / 255,
    channels first) -> ``(B, K)`` logits, the policy's pick logits at network resolution flattened
    (``K = H/2 * W/2`` cells of 2 x 2 pixels), or with ``head="place"`` its place logits for the fixed
    ``pick_pixel`` (``K = R * H/s * W/s``). The heightmap and instruction stay those of the observation. The
    policy's own normalisation (dataset statistics) runs inside, so budgets are in pixel units.

    A frozen backbone (CLIPort's EfficientNet) runs with autograd w.r.t. the input only; non-differentiable parts
    (a VLM grounding stream that crops objects) are recomputed from the current image under ``no_grad`` and
    treated as constants by the gradient (BPDA, Athalye et al. 2018, Sec. 4.1), so white-box attacks see the
    differentiable streams and black-box attacks see the whole policy.

    Args:
        policy: a :class:`~vlarm.policies.pick_place.PickPlacePolicy`.
        observation: ``{"colormap": (H, W, 3) uint8, "heightmap": (H, W) float32 metres, "instruction": str}``.
        head: ``"pick"`` or ``"place"``.
        pick_pixel: ``(row, col)`` full-resolution pick pixel for ``head="place"`` (default: the clean argmax).

    Raises:
        ValueError: an unknown ``head``.
    """

    HEADS = ("pick", "place")

    def __init__(self, policy, observation: dict, head: str = "pick", pick_pixel: tuple[int, int] | None = None):
        super().__init__()
        if head not in self.HEADS:
            raise ValueError(f"head must be one of {self.HEADS}, got {head!r}")
        self.policy = policy
        self.head = head
        self.heightmap = torch.as_tensor(np.asarray(observation["heightmap"], np.float32))
        self.instruction = str(observation.get("instruction", ""))
        self.clean = colormap_to_input(observation["colormap"])
        if head == "place" and pick_pixel is None:
            with torch.no_grad():
                low = self._pick_low(self.clean)[0]
            idx = int(torch.argmax(low))
            w = low.shape[-1]
            stride = policy.config.image_shape[1] // w
            pick_pixel = (idx // w * stride, idx % w * stride)
        self.pick_pixel = pick_pixel

    def _inputs(self, x: torch.Tensor) -> dict:
        b = x.shape[0]
        colormap = (255.0 * x).permute(0, 2, 3, 1)
        batch = {"colormap": colormap, "heightmap": self.heightmap[None].expand(b, -1, -1),
                 "instruction": [self.instruction] * b}
        backbone = getattr(self.policy, "backbone", None)
        if backbone is not None:   # differentiable w.r.t. the image, frozen weights
            batch["backbone_features"] = backbone(colormap.permute(0, 3, 1, 2))
        grounding = getattr(self.policy, "grounding_maps", None)
        if grounding is not None:
            with torch.no_grad():
                maps = grounding(colormap.detach().round().clamp(0, 255).to(torch.uint8), batch["heightmap"],
                                 batch["instruction"])
            if maps is not None:
                batch["grounding_maps"] = maps
        return self.policy.prepare(batch)

    def _pick_low(self, x: torch.Tensor) -> torch.Tensor:
        return self.policy.pick_logits_lowres(self._inputs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """See the class docstring."""
        if self.head == "pick":
            return self._pick_low(x).flatten(1)
        pick = torch.tensor([self.pick_pixel] * x.shape[0], dtype=torch.long)
        return self.policy.place_logits_lowres(self._inputs(x), pick).flatten(1)

    def tower_modules(self) -> list[nn.Module]:
        """The frozen pretrained parts (CLIPort's backbone; none for Transporter)."""
        backbone = getattr(self.policy, "backbone", None)
        return [backbone] if backbone is not None else []

    def cell_to_pixel(self, index: int) -> tuple[int, int]:
        """Full-resolution ``(row, col)`` of a flattened pick-logit cell (top-left pixel of the cell)."""
        h, w = self.policy.config.image_shape
        cells_w = w // 2
        return (index // cells_w) * 2, (index % cells_w) * 2


def colormap_to_input(colormap: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 colour map -> ``(1, 3, H, W)`` float32 in [0, 1] (the attack input convention)."""
    return torch.from_numpy(np.ascontiguousarray(colormap)).permute(2, 0, 1)[None].float() / 255.0


def input_to_colormap(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8, rounding each value toward the nearest grey level."""
    x = torch.as_tensor(x)
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


__all__ = ["TEMPLATES", "HeatmapPolicy", "VLMClassifier", "colormap_to_input", "input_to_colormap"]
