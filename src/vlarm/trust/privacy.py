"""Membership inference: does a model's loss tell its training samples from others?

The attack is the loss-threshold attack of Yeom et al. 2018 (Sec. 3.2, "Adversary 1"): a sample is called a
member when its loss is below a threshold. Sweeping the threshold gives the attack's ROC curve; we report its
area (AUC: 0.5 = the model leaks nothing this attack can read, 1.0 = members are perfectly separable) with a 95%
bootstrap interval, and the membership advantage ``max_t (TPR - FPR)`` (Yeom et al., Def. 4). It needs only
per-sample losses, so it applies to any model vlarm trains: a VLM head (cross-entropy of the true class) or a
policy (its pick + place imitation loss on a demonstration frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class MembershipResult:
    """Loss-threshold membership inference.

    Attributes:
        auc: ROC area of the attack score ``-loss`` (members positive).
        auc_ci: 95% percentile-bootstrap interval of the AUC (members and non-members resampled separately).
        advantage: ``max (TPR - FPR)`` over thresholds.
        members / nonmembers: sample counts.
        member_loss / nonmember_loss: mean losses.
    """

    auc: float
    auc_ci: tuple[float, float]
    advantage: float
    members: int
    nonmembers: int
    member_loss: float
    nonmember_loss: float


def loss_threshold_attack(member_losses: Sequence[float], nonmember_losses: Sequence[float],
                          resamples: int = 1000, seed: int = 0) -> MembershipResult:
    """Yeom et al.'s loss-threshold membership inference (module docstring).

    Args:
        member_losses: per-sample losses on training samples.
        nonmember_losses: per-sample losses on samples never trained on (same distribution).
        resamples: bootstrap resamples of the AUC.
        seed: bootstrap seed.

    Returns:
        A :class:`MembershipResult`.

    Raises:
        ValueError: either set empty or a non-finite loss.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    m = np.asarray(member_losses, dtype=np.float64).reshape(-1)
    n = np.asarray(nonmember_losses, dtype=np.float64).reshape(-1)
    if len(m) == 0 or len(n) == 0:
        raise ValueError("membership inference needs at least one member and one non-member loss")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(n))):
        raise ValueError("losses must be finite")
    y = np.r_[np.ones(len(m)), np.zeros(len(n))]
    score = -np.r_[m, n]
    auc = float(roc_auc_score(y, score))
    fpr, tpr, _ = roc_curve(y, score)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        bm, bn = rng.choice(m, len(m)), rng.choice(n, len(n))
        boot.append(roc_auc_score(y, -np.r_[bm, bn]))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return MembershipResult(auc, (float(lo), float(hi)), float(np.max(tpr - fpr)), len(m), len(n),
                            float(m.mean()), float(n.mean()))


def policy_frame_losses(policy, frames: Sequence[dict]) -> np.ndarray:
    """Per-frame imitation loss (pick + place cross-entropy, Transporter Eq. 1 and 3) of a pick-and-place policy.

    Args:
        policy: a :class:`~vlarm.policies.pick_place.PickPlacePolicy`.
        frames: dataset-style frames ``{"colormap" (H, W, 3) uint8, "heightmap" (H, W) float32, "instruction" str,
            "pick_pose" (7,), "place_pose" (7,)}`` (the oracle's action).

    Returns:
        ``(N,)`` float losses (no rotation augmentation: the frame as it is).
    """
    import torch

    from vlarm.policies.processing import frame_to_labels
    from vlarm.trust.attacks import preserved_state

    out = []
    with preserved_state(policy), torch.no_grad():
        for f in frames:
            lab = frame_to_labels(f, policy.config.image_shape)
            batch = {"colormap": torch.as_tensor(np.asarray(f["colormap"], np.uint8))[None],
                     "heightmap": torch.as_tensor(np.asarray(f["heightmap"], np.float32))[None],
                     "instruction": [f["instruction"]],
                     "pick_pixel": torch.as_tensor(lab["pick_pixel"])[None],
                     "place_pixel": torch.as_tensor(lab["place_pixel"])[None],
                     "place_rotation": torch.tensor([lab["place_rotation"]], dtype=torch.float32)}
            out.append(float(policy.forward(batch)[0]))
    return np.asarray(out)


__all__ = ["MembershipResult", "loss_threshold_attack", "policy_frame_losses"]
