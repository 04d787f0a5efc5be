import numpy as np
import pytest
import torch
from torch import nn

from vlarm.trust.attacks import predict
from vlarm.trust.training import (
    DPConfig,
    adversarial_fit_head,
    fit_head,
    frozen_features,
    inverse_frequency_weights,
    per_sample_losses,
    projection_head,
)

from .conftest import bn_state, make_classifier


def _backbone_with_bn():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten())
    with torch.no_grad():   # non-trivial running statistics
        for _ in range(3):
            net(torch.rand(16, 3, 8, 8))
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _toy(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, 8, 8, generator=g) * 0.5
    x[y == 1, 0] += 0.5   # class 1 is redder
    return x, y


def test_dp_training_accepts_a_frozen_batchnorm_backbone_and_keeps_its_statistics():
    backbone = _backbone_with_bn()
    backbone.train()   # even left in train mode by its owner
    before = bn_state(backbone)
    x, y = _toy()
    feats = frozen_features(backbone, x)
    head = nn.Linear(8, 2)
    info = fit_head(head, feats, y, epochs=5, lr=0.5, batch_size=16, dp=DPConfig(target_epsilon=4.0))
    assert 0 < info["epsilon"] <= 4.0 + 1e-3 and info["delta"] == 1e-5
    assert backbone.training   # its mode is restored
    assert all(torch.equal(before[k], v) for k, v in bn_state(backbone).items())
    assert all(p.grad is None for p in backbone.parameters())
    assert not head._forward_hooks and not head._backward_hooks   # Opacus' hooks removed from the shared head
    assert not any(hasattr(p, "grad_sample") and p.grad_sample is not None for p in head.parameters())


def test_the_trap_frozen_features_avoid():
    # Opacus validates only trainable modules, so a frozen BN backbone inside the private model passes its check,
    # and the usual model.train() before the loop would then move the BN statistics without any gradient.
    from opacus.validators import ModuleValidator

    backbone = _backbone_with_bn()
    model = nn.Sequential(backbone, nn.Linear(8, 2))
    assert ModuleValidator.validate(model, strict=False) == []
    before = bn_state(backbone)
    model.train()
    with torch.no_grad():
        model(_toy()[0])
    assert not torch.equal(before["1.running_mean"], bn_state(backbone)["1.running_mean"])


def test_plain_training_learns_and_weights_change_the_result():
    x, y = _toy(n=80)
    feats = frozen_features(_backbone_with_bn(), x)
    head = nn.Linear(8, 2)
    fit_head(head, feats, y, epochs=40, lr=0.05)
    assert (head(feats).argmax(1) == y).float().mean() > 0.9
    fractions = []
    for favoured in (0, 1):   # same start, opposite weights: the favoured class wins more predictions
        w = np.where(y.numpy() == favoured, 5.0, 0.2).astype(np.float32)
        torch.manual_seed(1)
        other = nn.Linear(8, 2)
        fit_head(other, feats, y, epochs=1, lr=0.01, weights=w)
        fractions.append(float((other(feats).argmax(1) == 1).float().mean()))
    assert fractions[1] > fractions[0]


def test_fit_head_rejects_bad_input():
    head = nn.Linear(8, 2)
    with pytest.raises(ValueError, match="labels"):
        fit_head(head, torch.zeros(4, 8), torch.zeros(3))
    with pytest.raises(ValueError, match="separate experiments"):
        fit_head(head, torch.zeros(4, 8), torch.zeros(4), weights=np.ones(4), dp=DPConfig())
    with pytest.raises(ValueError, match="> 0"):
        DPConfig(target_epsilon=0)


def test_inverse_frequency_weights_equalise_group_totals():
    groups = ["a"] * 6 + ["b"] * 2
    w = inverse_frequency_weights(groups)
    assert np.isclose(w[:6].sum(), w[6:].sum()) and np.isclose(w.mean(), 1.0)
    with pytest.raises(ValueError):
        inverse_frequency_weights([])


def test_adversarial_training_trains_only_the_head(images):
    clf = make_classifier(train_head=True)
    tower = clf.tower_modules()[0]
    before_bn = bn_state(tower)
    before_head = [p.detach().clone() for p in clf.head_parameters()]
    labels = predict(clf, images)
    flags = [m.training for m in clf.modules()]
    adversarial_fit_head(clf, images.numpy(), labels, 8 / 255, epochs=2, steps=2, batch_size=6)
    assert all(torch.equal(before_bn[k], v) for k, v in bn_state(tower).items())
    assert any(not torch.equal(a, b) for a, b in zip(before_head, clf.head_parameters(), strict=True))
    assert all(p.grad is None for p in tower.parameters()) and [m.training for m in clf.modules()] == flags


def test_projection_head_shares_parameters_and_losses_are_per_sample(images):
    clf = make_classifier(train_head=True)
    head = projection_head(clf)
    assert head.proj is clf.model.image_proj
    feats = frozen_features(clf, images)
    assert torch.allclose(head(feats), clf(images), atol=1e-5)
    losses = per_sample_losses(head, feats, np.zeros(len(images), int))
    assert losses.shape == (len(images),) and np.all(losses > 0)
