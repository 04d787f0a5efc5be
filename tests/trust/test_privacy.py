import numpy as np
import pytest

from vlarm.trust.privacy import loss_threshold_attack


def test_separable_losses_give_auc_one():
    r = loss_threshold_attack([0.1, 0.2, 0.05], [1.0, 2.0, 0.9, 1.5])
    assert r.auc == 1.0 and r.advantage == 1.0 and r.members == 3 and r.nonmembers == 4
    assert np.isclose(r.member_loss, 0.35 / 3)


def test_identical_losses_give_auc_half():
    x = np.random.default_rng(0).exponential(size=200)
    r = loss_threshold_attack(x, np.random.default_rng(1).permutation(x))
    assert np.isclose(r.auc, 0.5) and r.advantage == 0.0 and r.auc_ci[0] < 0.5 < r.auc_ci[1]


def test_reversed_losses_give_auc_zero():
    assert loss_threshold_attack([2.0, 3.0], [0.1, 0.2]).auc == 0.0


def test_empty_or_nan_refused():
    with pytest.raises(ValueError, match="at least one"):
        loss_threshold_attack([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        loss_threshold_attack([np.nan], [1.0])
