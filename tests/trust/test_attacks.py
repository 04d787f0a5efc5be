import numpy as np
import pytest
import torch
from torch import nn

from vlarm.trust.attacks import ATTACKS, attack, predict, preserved_state, robust_accuracy

from .conftest import bn_state, make_classifier


def _flags(model):
    return [m.training for m in model.modules()]


def test_model_put_in_eval_after_setup_stays_in_eval(classifier, images):
    # torchattacks' failure: the mode seen when the attack object was built is restored afterwards.
    classifier.train()
    labels = predict(classifier, images)
    classifier.eval()
    before = bn_state(classifier)
    for method in ATTACKS:
        attack(classifier, images, labels, method, 8 / 255, steps=3)
        assert not any(_flags(classifier))
        after = bn_state(classifier)
        assert before.keys() == after.keys() and len(before) == 3
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_train_mode_is_restored_and_batch_norm_untouched():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    net.train()
    net[1].eval()   # a frozen BN inside a training model: each flag must come back as it was
    flags = _flags(net)
    before = bn_state(net)
    x = torch.rand(6, 3, 8, 8)
    attack(net, x, np.zeros(6, int), "pgd", 4 / 255, steps=3)
    assert _flags(net) == flags
    assert all(torch.equal(before[k], v) for k, v in bn_state(net).items())


def test_no_gradient_reaches_the_frozen_tower(images):
    clf = make_classifier(train_head=True)
    tower = clf.tower_modules()[0]
    labels = predict(clf, images)
    adv = attack(clf, images, labels, "pgd", 8 / 255, steps=5)
    assert all(p.grad is None and not p.requires_grad for p in tower.parameters())
    assert all(p.grad is None for p in clf.head_parameters())   # the attack leaves no gradient on the head either
    assert all(p.requires_grad for p in clf.head_parameters())
    assert np.abs(adv - images.numpy()).max() > 0   # the input gradient did flow through the tower


@pytest.mark.parametrize("method", sorted(ATTACKS))
@pytest.mark.parametrize("eps", [2 / 255, 8 / 255])
def test_every_attack_respects_its_budget(classifier, images, method, eps):
    labels = predict(classifier, images)
    adv = attack(classifier, images, labels, method, eps, steps=5)
    delta = np.abs(adv - images.numpy())
    assert adv.shape == tuple(images.shape) and adv.dtype == np.float32
    assert delta.max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert delta.max() > eps / 2   # and it does use the budget


def test_pgd_raises_the_loss_of_every_image(classifier, images):
    labels = predict(classifier, images)
    adv = attack(classifier, images, labels, "pgd", 16 / 255, steps=10)
    with torch.no_grad():
        clean = nn.functional.cross_entropy(classifier(images), torch.as_tensor(labels), reduction="none")
        worse = nn.functional.cross_entropy(classifier(torch.from_numpy(adv)), torch.as_tensor(labels),
                                            reduction="none")
    assert torch.all(worse > clean)
    r = robust_accuracy(classifier, images.numpy(), labels, "pgd", 16 / 255, steps=10)
    assert r.clean_accuracy == 100.0 and r.adversarial_accuracy <= r.clean_accuracy
    assert r.linf <= 16 / 255 + 1e-6 and r.n == len(labels)


def test_bad_arguments_are_refused(classifier, images):
    with pytest.raises(ValueError, match="valid: noise, fgsm"):
        attack(classifier, images, np.zeros(12, int), "cw", 0.1)
    with pytest.raises(ValueError, match="eps"):
        attack(classifier, images, np.zeros(12, int), "fgsm", -0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(classifier, images * 255, np.zeros(12, int), "fgsm", 0.1)


def test_preserved_state_restores_on_error(classifier):
    classifier.train()
    flags = _flags(classifier)
    with pytest.raises(RuntimeError), preserved_state(classifier):
        assert not classifier.training
        raise RuntimeError("boom")
    assert _flags(classifier) == flags
