"""Symmetric InfoNCE (CLIP) loss with a learnable, clamped temperature.

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision", Sec. 2.3 and
Fig. 3: cross-entropy over the image-text similarity matrix in both directions, averaged; the temperature is a
learnable log-parameterised scalar initialised at 1/0.07 and clipped so the logit scale never exceeds 100.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Initial logit scale, log(1 / 0.07) (CLIP Sec. 2.5).
LOGIT_SCALE_INIT = math.log(1.0 / 0.07)
#: Largest allowed logit scale (exp of the log parameter), CLIP Sec. 2.5.
LOGIT_SCALE_MAX = 100.0


def init_logit_scale() -> nn.Parameter:
    """Return a scalar ``nn.Parameter`` holding log(1/0.07) (float32), the CLIP temperature initialisation."""
    return nn.Parameter(torch.tensor(LOGIT_SCALE_INIT, dtype=torch.float32))


@torch.no_grad()
def clamp_logit_scale_(logit_scale: torch.Tensor, max_scale: float = LOGIT_SCALE_MAX) -> torch.Tensor:
    """Clamp a log-parameterised logit scale in place so that ``exp(logit_scale) <= max_scale``.

    Call it after each optimiser step (CLIP Sec. 2.5 clips the temperature to prevent scaling the logits by
    more than 100).

    Args:
        logit_scale: scalar tensor, the *log* of the multiplier.
        max_scale: upper bound on the multiplier (not its log).

    Returns:
        The same tensor, clamped to ``[0, log(max_scale)]``.
    """
    return logit_scale.clamp_(0.0, math.log(max_scale))


def clip_logits(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled cosine-similarity logits in both directions.

    Args:
        image_features: ``(B, D)`` float, L2-normalised.
        text_features: ``(B, D)`` float, L2-normalised; row ``i`` is the caption of image ``i``.
        logit_scale: scalar log multiplier; ``exp`` is taken here and capped at :data:`LOGIT_SCALE_MAX` so the
            forward pass respects the clamp even between optimiser steps.

    Returns:
        ``(logits_per_image, logits_per_text)``, each ``(B, B)``; the second is the transpose of the first.
    """
    scale = logit_scale.exp().clamp(max=LOGIT_SCALE_MAX)
    logits_per_image = scale * image_features @ text_features.t()
    return logits_per_image, logits_per_image.t()


class ClipLoss(nn.Module):
    """Symmetric InfoNCE: ``(CE(logits_per_image, arange) + CE(logits_per_text, arange)) / 2``.

    Swapping the roles of images and texts leaves the loss unchanged (the "symmetric" of CLIP Fig. 3).
    """

    def forward(
        self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            image_features: ``(B, D)`` float, L2-normalised image embeddings.
            text_features: ``(B, D)`` float, L2-normalised text embeddings, paired row by row.
            logit_scale: scalar log multiplier (see :func:`clip_logits`).

        Returns:
            Scalar float loss (nats).

        Raises:
            ValueError: if the two batches differ in shape.
        """
        if image_features.shape != text_features.shape:
            raise ValueError(
                f"image and text features must match in shape, got {tuple(image_features.shape)} "
                f"and {tuple(text_features.shape)}"
            )
        logits_per_image, logits_per_text = clip_logits(image_features, text_features, logit_scale)
        labels = torch.arange(image_features.shape[0], device=image_features.device)
        return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))
