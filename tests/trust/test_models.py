import numpy as np
import pytest
import torch

from vlarm.policies import make_policy
from vlarm.trust.attacks import attack, predict
from vlarm.trust.models import HeatmapPolicy, colormap_to_input, input_to_colormap


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return make_policy("transporter", image_shape=(64, 32), widths=(4, 4, 4, 4), n_rotations=4, crop_size=16).eval()


@pytest.fixture
def observation():
    rng = np.random.default_rng(0)
    return {"colormap": rng.integers(0, 256, (64, 32, 3), dtype=np.uint8),
            "heightmap": rng.uniform(0, 0.05, (64, 32)).astype(np.float32), "instruction": "x"}


def test_classifier_forward_scales_pixels_inside(classifier):
    x = torch.rand(2, 3, 16, 16)
    manual = classifier.logits_from_features(classifier.model.image_tower(255 * x))
    assert torch.allclose(classifier(x), manual)
    assert classifier(x).shape == (2, 3)


def test_class_weights_must_match_classnames(classifier):
    from vlarm.trust.models import VLMClassifier

    with pytest.raises(ValueError, match=r"\(D, 2\)"):
        VLMClassifier(classifier.model, classifier.transform, torch.ones(6, 3), ["a", "b"])


def test_heatmap_policy_gives_the_policy_logits(policy, observation):
    pick = HeatmapPolicy(policy, observation, "pick")
    logits = pick(colormap_to_input(observation["colormap"]))
    assert logits.shape == (1, 32 * 16)
    batch = {"colormap": torch.as_tensor(observation["colormap"])[None],
             "heightmap": torch.as_tensor(observation["heightmap"])[None], "instruction": ["x"]}
    with torch.no_grad():
        own = policy.pick_logits_lowres(policy.prepare(batch))
    assert torch.allclose(logits, own.flatten(1), atol=1e-5)
    assert pick.cell_to_pixel(17) == (2, 2)
    place = HeatmapPolicy(policy, observation, "place")
    assert place(colormap_to_input(observation["colormap"])).shape == (1, 4 * 16 * 8)
    with pytest.raises(ValueError, match="head must be one of"):
        HeatmapPolicy(policy, observation, "grasp")


def test_attack_on_policy_heatmap_respects_budget_in_grey_levels(policy, observation):
    pick = HeatmapPolicy(policy, observation, "pick")
    x = colormap_to_input(observation["colormap"]).numpy()
    adv = attack(pick, x, predict(pick, x), "pgd", 4 / 255, steps=3)
    levels = np.abs(input_to_colormap(adv[0]).astype(int) - observation["colormap"].astype(int))
    assert levels.max() <= 4 and not policy.training


def test_square_attack_runs_on_non_square_images(policy, observation):
    pick = HeatmapPolicy(policy, observation, "pick")
    x = colormap_to_input(observation["colormap"]).numpy()
    adv = attack(pick, x, predict(pick, x), "square", 8 / 255, steps=30)
    assert np.abs(adv - x).max() <= 8 / 255 + 1e-6


def test_colormap_round_trip():
    cm = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert np.array_equal(input_to_colormap(colormap_to_input(cm)[0]), cm)
