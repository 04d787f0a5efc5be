"""Training a small head on a frozen tower: plain, re-weighted, adversarial (ART) and differentially private (Opacus).

One home for the four ways :mod:`vlarm.trust` trains a head, so the comparisons differ in one thing only:

* plain / re-weighted: cross-entropy on cached frozen features, optional per-sample weights (the fairness
  mitigation: inverse group frequency, Kamiran & Calders 2012, Sec. 4);
* DP-SGD: per-sample clipping and Gaussian noise by Opacus (Abadi et al. 2016, Alg. 1), epsilon from Opacus' RDP
  accountant for a target delta; only the head goes to Opacus;
* adversarial: Madry et al. 2018 PGD adversarial training with ART's ``AdversarialTrainer`` in pixel space
  (the frozen tower runs on every adversarial image; only the head learns).

The frozen tower is never trained and never sees a training-mode forward: features come from
:func:`frozen_features` (eval mode, ``no_grad``, every train flag restored), so a tower with batch norm is
accepted and its running statistics do not change (Opacus rejects batch norm *inside* the module it makes
private, because batch statistics mix samples; a frozen tower outside it mixes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlarm.trust.attacks import preserved_state


class ProjectionHead(nn.Module):
    """The trainable part of a :class:`~vlarm.trust.models.VLMClassifier`: ``(B, F)`` tower features ->
    ``(B, C)`` logits ``s * normalize(proj(f)) @ W`` with the class embeddings ``W`` fixed.

    Args:
        proj: the image projection (shared with the VLM: training it trains the VLM's head).
        class_weights: ``(D, C)`` float class embeddings.
        scale: logit multiplier ``s``.
    """

    def __init__(self, proj: nn.Module, class_weights: torch.Tensor, scale: float):
        super().__init__()
        self.proj = proj
        self.register_buffer("class_weights", class_weights.detach().clone())
        self.scale = float(scale)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """See the class docstring."""
        return self.scale * F.normalize(self.proj(feats), dim=-1) @ self.class_weights


def projection_head(classifier) -> ProjectionHead:
    """The :class:`ProjectionHead` of a :class:`~vlarm.trust.models.VLMClassifier` (sharing its parameters).

    Raises:
        ValueError: the model has no separate image projection.
    """
    proj = getattr(classifier.model, "image_proj", None)
    if proj is None:
        raise ValueError(f"{type(classifier.model).__name__} has no image projection head to train")
    return ProjectionHead(proj, classifier.class_weights, classifier.scale)


@torch.no_grad()
def frozen_features(tower, x: torch.Tensor | np.ndarray, batch_size: int = 64) -> torch.Tensor:
    """Features of a frozen tower, in eval mode without autograd; every train flag and ``.grad`` restored.

    Args:
        tower: an ``nn.Module`` or a :class:`~vlarm.trust.models.VLMClassifier` (its ``features``).
        x: ``(N, ...)`` float inputs (for a VLM classifier: images in [0, 1]).
        batch_size: inputs per forward pass.

    Returns:
        ``(N, F)`` float32 features.
    """
    fn = tower.features if hasattr(tower, "features") else tower
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    with preserved_state(tower):
        out = [fn(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 0)


@dataclass
class DPConfig:
    """Differential privacy of head training (Opacus).

    Attributes:
        target_epsilon: privacy budget epsilon the noise is calibrated to over all epochs (> 0).
        target_delta: delta (> 0; below 1 / number of training samples by convention).
        max_grad_norm: per-sample gradient clipping norm C.
    """

    target_epsilon: float = 8.0
    target_delta: float = 1e-5
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        """Raises ValueError for non-positive values."""
        if min(self.target_epsilon, self.target_delta, self.max_grad_norm) <= 0:
            raise ValueError(f"DP settings must be > 0, got {self}")


def fit_head(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor | np.ndarray, epochs: int = 30,
             lr: float = 1e-2, batch_size: int = 32, weights: np.ndarray | None = None, dp: DPConfig | None = None,
             seed: int = 0) -> dict:
    """Train ``head`` (features -> logits) with cross-entropy on cached features.

    Args:
        head: the module to train; all its parameters with ``requires_grad`` learn.
        feats: ``(N, F)`` float features (e.g. :func:`frozen_features`).
        labels: ``(N,)`` int classes.
        epochs: passes over the data (>= 1).
        lr: Adam learning rate (SGD with momentum 0.9 under DP, as Opacus' examples).
        batch_size: samples per step (the expected batch under DP's Poisson sampling).
        weights: optional ``(N,)`` per-sample loss weights (re-weighting); not combined with ``dp``.
        dp: train with DP-SGD (Opacus) when given.
        seed: data order and noise seed.

    Returns:
        ``{"epochs", "final_loss", "epsilon", "delta"}`` (epsilon/delta None without DP).

    Raises:
        ValueError: mismatched sizes, ``epochs < 1``, weights together with DP, or no trainable parameter.
    """
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(feats) != len(labels):
        raise ValueError(f"{len(feats)} feature rows but {len(labels)} labels")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if weights is not None and dp is not None:
        raise ValueError("re-weighting and DP training are separate experiments here; pass one of them")
    params = [p for p in head.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the head has no trainable parameter")
    w = torch.ones(len(labels)) if weights is None else torch.as_tensor(np.asarray(weights, np.float32))
    torch.manual_seed(seed)
    data = torch.utils.data.TensorDataset(feats.float(), labels, w)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    model, engine = head, None
    if dp is None:
        optimizer = torch.optim.Adam(params, lr=lr)
    else:
        from opacus import PrivacyEngine

        optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9)
        engine = PrivacyEngine(accountant="rdp")
        model, optimizer, loader = engine.make_private_with_epsilon(
            module=head, optimizer=optimizer, data_loader=loader, target_epsilon=dp.target_epsilon,
            target_delta=dp.target_delta, epochs=epochs, max_grad_norm=dp.max_grad_norm, noise_generator=None)
    model.train()
    last = float("nan")
    for _ in range(epochs):
        total, count = 0.0, 0
        for xb, yb, wb in loader:
            if len(yb) == 0:   # Poisson sampling can draw an empty batch
                continue
            optimizer.zero_grad()
            per_sample = F.cross_entropy(model(xb), yb, reduction="none")
            loss = (per_sample * wb).sum() / wb.sum()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(yb), count + len(yb)
        last = total / max(count, 1)
    head.eval()
    out = {"epochs": epochs, "final_loss": last, "epsilon": None, "delta": None}
    if engine is not None:
        out["epsilon"] = float(engine.get_epsilon(dp.target_delta))
        out["delta"] = dp.target_delta
        if hasattr(model, "_close"):
            model._close()   # remove Opacus' hooks from the shared head
    return out


def adversarial_fit_head(classifier, x: np.ndarray, labels: np.ndarray, eps: float, epochs: int = 3,
                         steps: int = 5, ratio: float = 0.5, lr: float = 1e-3, batch_size: int = 32,
                         seed: int = 0) -> dict:
    """PGD adversarial training (Madry et al. 2018, Sec. 3) of a VLM classifier's image head with ART's
    ``AdversarialTrainer``: each batch, a ``ratio`` share of the images is replaced by PGD examples
    (``eps``, ``steps`` iterations) against the current head; the tower stays frozen and in eval mode.

    Args:
        classifier: a :class:`~vlarm.trust.models.VLMClassifier` built with ``train_head=True``.
        x: ``(N, 3, H, W)`` float32 images in [0, 1].
        labels: ``(N,)`` int classes.
        eps: PGD budget in pixel units.
        epochs: passes over the data.
        steps: PGD iterations per adversarial batch.
        ratio: share of each batch replaced by adversarial images.
        lr: Adam learning rate of the head.
        batch_size: images per step.
        seed: numpy / torch seed.

    Returns:
        ``{"epochs", "eps", "steps", "ratio"}``.

    Raises:
        ValueError: the classifier's head is not trainable.
    """
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.trainer import AdversarialTrainer

    from vlarm.trust.attacks import art_classifier, pgd_step

    params = [p for p in classifier.parameters() if p.requires_grad]
    if not params:
        raise ValueError("build the VLMClassifier with train_head=True to train its head")
    np.random.seed(seed)
    torch.manual_seed(seed)
    x = np.asarray(x, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    art_clf = art_classifier(classifier, x.shape[1:], len(classifier.classnames), torch.optim.Adam(params, lr=lr))
    pgd = ProjectedGradientDescent(art_clf, norm=np.inf, eps=eps, eps_step=pgd_step(eps, steps),
                                   max_iter=steps, num_random_init=1, batch_size=batch_size, verbose=False)
    with preserved_state(classifier):
        classifier.train()   # head in train mode; VLMClassifier.train keeps the tower in eval mode
        AdversarialTrainer(art_clf, attacks=pgd, ratio=ratio).fit(x, labels, nb_epochs=epochs, batch_size=batch_size)
    return {"epochs": epochs, "eps": eps, "steps": steps, "ratio": ratio}


def inverse_frequency_weights(groups) -> np.ndarray:
    """Per-sample weights ``N / (G * n_g)`` so every group carries the same total weight (mean weight 1).

    Args:
        groups: ``(N,)`` group labels (any hashable values).

    Returns:
        ``(N,)`` float32 weights.

    Raises:
        ValueError: no samples.
    """
    groups = np.asarray(groups)
    if len(groups) == 0:
        raise ValueError("no samples to weight")
    values, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return (len(groups) / (len(values) * counts[inverse])).astype(np.float32)


@torch.no_grad()
def per_sample_losses(head: nn.Module, feats: torch.Tensor, labels) -> np.ndarray:
    """``(N,)`` float cross-entropy of each sample under ``head`` (eval mode, flags restored)."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    with preserved_state(head):
        return F.cross_entropy(head(feats.float()), labels, reduction="none").numpy()


__all__ = ["DPConfig", "ProjectionHead", "adversarial_fit_head", "fit_head", "frozen_features",
           "inverse_frequency_weights", "per_sample_losses", "projection_head"]
