import math

import torch
import torch.nn.functional as F

from vlarm.vlm.loss import LOGIT_SCALE_INIT, ClipLoss, clamp_logit_scale_, clip_logits, init_logit_scale


def _feats(b=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, d, generator=g), dim=-1), F.normalize(torch.randn(b, d, generator=g), dim=-1)


def test_loss_is_symmetric_in_images_and_texts():
    img, txt = _feats()
    scale = init_logit_scale()
    loss = ClipLoss()
    assert torch.allclose(loss(img, txt, scale), loss(txt, img, scale))


def test_loss_matches_hand_computation_and_prefers_matched_pairs():
    img, txt = _feats()
    scale = torch.tensor(math.log(10.0))
    logits = 10.0 * img @ txt.t()
    labels = torch.arange(6)
    expected = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    assert torch.allclose(ClipLoss()(img, txt, scale), expected)
    assert ClipLoss()(img, img, scale) < ClipLoss()(img, txt, scale)


def test_temperature_init_and_clamp():
    p = init_logit_scale()
    assert math.isclose(p.item(), math.log(1 / 0.07), rel_tol=1e-6)
    assert math.isclose(LOGIT_SCALE_INIT, math.log(1 / 0.07))
    p.data.fill_(10.0)  # exp(10) ~ 22026
    clamp_logit_scale_(p)
    assert math.isclose(p.exp().item(), 100.0, rel_tol=1e-5)
    img, txt = _feats()
    logits, logits_t = clip_logits(img, txt, torch.tensor(12.0))
    assert logits.abs().max() <= 100.0 + 1e-4 and torch.equal(logits_t, logits.t())
