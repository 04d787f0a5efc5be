"""Adversarial inputs with the Adversarial Robustness Toolbox (ART 1.20): FGSM, PGD and the black-box Square attack.

* FGSM: Goodfellow et al. 2015, Sec. 4 (one signed-gradient step of size eps);
* PGD: Madry et al. 2018, Sec. 2.1 (iterated signed steps projected on the L-inf ball, random start);
* Square: Andriushchenko et al. 2020 (score-based black-box: random square-shaped updates, queries only);
* noise: the control, random signs of size eps (what an attack adds beyond a random perturbation of its size).

Budgets are L-inf in pixel units on [0, 1] images (``eps = 8/255``): the attacked module
(:class:`~vlarm.trust.models.VLMClassifier`, :class:`~vlarm.trust.models.HeatmapPolicy`) normalises inside.

Two ways attack libraries go wrong are guarded here (:func:`preserved_state`), each with a test:

1. *Mode.* torchattacks records ``model.training`` when the attack object is built and restores *that* after each
   attack, so a model put in eval mode later comes back in train mode and its batch-norm statistics drift; ART's
   ``PyTorchClassifier`` calls ``model.train(False)`` and never restores. Here every sub-module's flag is recorded
   when the attack *runs*, the model is attacked in eval mode, and every flag is restored afterwards; batch-norm
   buffers are left bit-identical.
2. *Frozen towers.* A frozen tower (``requires_grad=False``) must stay so and never receive ``.grad``; ART's
   backward pass would also leave gradients on trainable heads, so every parameter's ``.grad`` is restored too.

The returned adversarial images are projected once more onto the eps-ball around the input and onto [0, 1], so
the budget holds whatever the library does (a test checks every attack).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

#: Attacks this module runs (name -> kind); ``noise`` is the control: random signs of size eps, no model access.
ATTACKS = {"noise": "control", "fgsm": "white-box", "pgd": "white-box", "square": "black-box"}


@contextlib.contextmanager
def preserved_state(model: nn.Module):
    """Run a block with ``model`` in eval mode and restore every module's train flag and every parameter's
    ``requires_grad`` and ``.grad`` afterwards (even on error).

    Yields:
        The model, in eval mode.
    """
    modes = {m: m.training for m in model.modules()}
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    try:
        model.eval()
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode
        for p, flag, grad in zip(params, flags, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad


def pgd_step(eps: float, steps: int) -> float:
    """PGD step size: 2.5 eps / steps (Madry et al. 2018, App. A), at least eps / 4 and at most eps."""
    return min(eps, max(eps / 4, 2.5 * eps / max(steps, 1)))


def art_classifier(model: nn.Module, input_shape: tuple[int, ...], nb_classes: int, optimizer=None):
    """Wrap a module ``forward(x in [0, 1]) -> logits`` as ART's ``PyTorchClassifier`` (cross-entropy loss,
    ``clip_values=(0, 1)``, CPU or the model's device; ``optimizer`` only for training through ART)."""
    from art.estimators.classification import PyTorchClassifier

    device = next(iter(model.parameters()), torch.empty(0)).device
    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(input_shape),
                             nb_classes=int(nb_classes), clip_values=(0.0, 1.0), optimizer=optimizer,
                             device_type="gpu" if device.type == "cuda" else "cpu")


def _art_attack(name: str, classifier, eps: float, steps: int, seed: int, batch_size: int):
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent, SquareAttack

    if name == "fgsm":
        return FastGradientMethod(classifier, norm=np.inf, eps=eps, batch_size=batch_size)
    if name == "pgd":
        return ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=pgd_step(eps, steps),
                                        max_iter=steps, num_random_init=1, batch_size=batch_size, verbose=False,
                                        random_eps=False)
    # ART draws square positions in [0, side - square); its square (side sqrt(p H W)) must fit the short side of
    # non-square inputs (a 320 x 160 heightmap image), so p_init = 0.8 (ART's default) scaled by short^2 / (H W).
    h, w = classifier.input_shape[-2:]
    return SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=steps, nb_restarts=1, batch_size=batch_size,
                        p_init=0.8 * min(h, w) ** 2 / (h * w), verbose=False)


def attack(model: nn.Module, x: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, method: str,
           eps: float, steps: int = 10, seed: int = 0, batch_size: int = 32) -> np.ndarray:
    """Untargeted L-inf adversarial examples against ``model`` (see the module docstring).

    Args:
        model: ``forward((B, *input_shape) float in [0, 1]) -> (B, C) logits``.
        x: ``(N, *input_shape)`` float32 images in [0, 1].
        labels: ``(N,)`` int true classes (for a policy: the clean argmax cell).
        method: one of :data:`ATTACKS` (``noise``, ``fgsm``, ``pgd``, ``square``).
        eps: budget in pixel units on [0, 1] (e.g. ``8 / 255``), >= 0.
        steps: PGD iterations / Square queries per image (FGSM ignores it).
        seed: seeds numpy and torch for the random start / random squares.
        batch_size: images per ART batch.

    Returns:
        ``(N, *input_shape)`` float32 adversarial images in [0, 1], ``|x_adv - x|_inf <= eps``.

    Raises:
        ValueError: an unknown method, a negative eps, or ``x`` outside [0, 1].
    """
    if method not in ATTACKS:
        raise ValueError(f"unknown attack {method!r}; valid: {', '.join(ATTACKS)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0 (pixel units on [0, 1]), got {eps}")
    x = np.asarray(torch.as_tensor(x).detach().cpu(), dtype=np.float32)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"images must be in [0, 1] (pixel units), got values in [{x.min()}, {x.max()}]")
    y = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).reshape(-1)
    if eps == 0 or len(x) == 0:
        return x.copy()
    np.random.seed(seed)
    torch.manual_seed(seed)
    if method == "noise":
        signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0], np.float32), size=x.shape)
        return project(x, x + eps * signs, eps)
    with preserved_state(model), torch.enable_grad():
        nb_classes = int(model(torch.from_numpy(x[:1]).to(_device(model))).shape[1])
        classifier = art_classifier(model, x.shape[1:], nb_classes)
        adv = _art_attack(method, classifier, eps, steps, seed, batch_size).generate(x=x, y=y)
    return project(x, np.asarray(adv, dtype=np.float32), eps)


def project(x: np.ndarray, x_adv: np.ndarray, eps: float) -> np.ndarray:
    """``x_adv`` clipped to the L-inf ball of radius ``eps`` around ``x`` and to [0, 1] (float32)."""
    return np.clip(np.clip(x_adv, x - eps, x + eps), 0.0, 1.0).astype(np.float32)


def _device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """``(N,)`` int64 argmax classes of ``model`` on ``x`` (in eval mode, mode restored)."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    with preserved_state(model):
        out = [model(x[i : i + batch_size].to(_device(model))).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


@dataclass
class AttackResult:
    """Accuracy of a classifier on clean and adversarial inputs.

    Attributes:
        method / eps: the attack and its budget (pixel units on [0, 1]).
        n: number of images.
        clean_accuracy / adversarial_accuracy: percent.
        clean_ci / adversarial_ci: 95% Wilson intervals (percent).
        linf: the largest perturbation actually used, pixel units.
    """

    method: str
    eps: float
    n: int
    clean_accuracy: float
    clean_ci: tuple[float, float]
    adversarial_accuracy: float
    adversarial_ci: tuple[float, float]
    linf: float


def robust_accuracy(model: nn.Module, x: np.ndarray, labels: np.ndarray, method: str, eps: float,
                    steps: int = 10, seed: int = 0) -> AttackResult:
    """Clean and adversarial top-1 accuracy of ``model`` under one attack, with 95% Wilson intervals.

    Args:
        model: as :func:`attack`.
        x: ``(N, *input_shape)`` float32 images in [0, 1].
        labels: ``(N,)`` int true classes.
        method: one of :data:`ATTACKS`.
        eps: budget in pixel units on [0, 1].
        steps: attack iterations (see :func:`attack`).
        seed: attack randomness.

    Returns:
        An :class:`AttackResult`.
    """
    from vlarm.stats import wilson_interval

    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    clean_ok = predict(model, x) == labels
    adv = attack(model, x, labels, method, eps, steps=steps, seed=seed)
    adv_ok = predict(model, adv) == labels
    n = len(labels)
    return AttackResult(method, float(eps), n, 100 * float(clean_ok.mean()), wilson_interval(int(clean_ok.sum()), n),
                        100 * float(adv_ok.mean()), wilson_interval(int(adv_ok.sum()), n),
                        float(np.abs(adv - np.asarray(x)).max()) if n else 0.0)


__all__ = ["ATTACKS", "AttackResult", "art_classifier", "attack", "pgd_step", "predict", "preserved_state", "project",
           "robust_accuracy"]
