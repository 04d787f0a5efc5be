import itertools

import numpy as np
import pytest
import torch

from vlarm.vlm.qa.inference import ask
from vlarm.vlm.qa.model import (
    MIAVLM,
    MIAVLMConfig,
    QuestionFeaturizer,
    build_vocabulary,
    tile_views,
    view_set,
)

QUESTIONS = ["Is the block red?", "Is the red object a star?", "Is the bowl left of the block?"]


def make(fusion: str, views=(0, 1, 2, 3), seed: int = 0, encoder: str = "cnn") -> tuple[MIAVLM, QuestionFeaturizer]:
    torch.manual_seed(seed)
    cfg = MIAVLMConfig(fusion=fusion, views=views, image_size=16, view_encoder=encoder, width=32, prompt_tokens=4,
                       extractor_blocks=1, answer_layers=1, question_encoder="words",
                       vocabulary=build_vocabulary(QUESTIONS))
    model = MIAVLM(cfg).eval()
    # Random weights make the sampler's view weights nearly uniform; sharpen them so that the order matters to
    # any fusion that is not exactly invariant.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model, QuestionFeaturizer(cfg)


def scene_views(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def answers(model, featurizer, views: np.ndarray) -> tuple[list[str], np.ndarray]:
    out = ask(model, views, QUESTIONS, featurizer)
    return [o["answer"] for o in out], np.array([o["p_yes"] for o in out])


@pytest.mark.parametrize("fusion", ["map", "mean"])
def test_answers_identical_under_every_permutation_of_the_views(fusion):
    model, feat = make(fusion)
    views = scene_views(4)
    base_answers, base_p = answers(model, feat, views)
    for perm in itertools.permutations(range(4)):               # all 24 orders
        got_answers, got_p = answers(model, feat, views[list(perm)])
        assert got_answers == base_answers
        np.testing.assert_allclose(got_p, base_p, rtol=0, atol=1e-5)


@torch.no_grad()
def test_frozen_effnet_path_is_order_invariant_and_matches_cached_inputs():
    model, feat = make("map", encoder="effnet")
    views = scene_views(4, seed=2)
    base_answers, base_p = answers(model, feat, views)
    for perm in [(1, 0, 2, 3), (3, 2, 1, 0), (2, 3, 0, 1)]:
        got_answers, got_p = answers(model, feat, views[list(perm)])
        assert got_answers == base_answers
        np.testing.assert_allclose(got_p, base_p, rtol=0, atol=1e-5)
    with torch.no_grad():
        inputs = model.view_inputs(views[None])
        assert inputs.shape == (1, 4, 64, 152)
        a, _ = model.encode_views(views[None])
        b, _ = model.encode_views(inputs=inputs.half())          # the float16 cache the training loop reads
    torch.testing.assert_close(a, b, rtol=0, atol=2e-2)
    assert not any(k.startswith("_backbone") for k in model.state_dict())   # the frozen backbone is not saved
    with pytest.raises(ValueError, match="not both or neither"):
        model.encode_views()


@torch.no_grad()
def test_map_weights_follow_their_views_and_sum_to_one():
    model, _ = make("map")
    views = torch.from_numpy(scene_views(4))[None]
    _, w = model.encode_views(views)
    perm = [2, 0, 3, 1]
    _, w_perm = model.encode_views(views[:, perm])
    torch.testing.assert_close(w.sum(1), torch.ones(1))
    torch.testing.assert_close(w_perm[0], w[0, perm], rtol=0, atol=1e-6)
    assert float(w.max() - w.min()) > 1e-3                     # the weights do differ between views


def test_nine_views_random_permutations():
    model, feat = make("map", views=tuple(range(9)))
    views = scene_views(9, seed=1)
    base_answers, base_p = answers(model, feat, views)
    rng = np.random.default_rng(0)
    for _ in range(20):
        got_answers, got_p = answers(model, feat, views[rng.permutation(9)])
        assert got_answers == base_answers
        np.testing.assert_allclose(got_p, base_p, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fusion", ["concat", "tile"])
def test_order_sensitive_baselines_change_with_the_order(fusion):
    model, feat = make(fusion)
    views = scene_views(4)
    _, base_p = answers(model, feat, views)
    changes = [np.abs(answers(model, feat, views[list(perm)])[1] - base_p).max()
               for perm in itertools.permutations(range(4))]
    assert max(changes) > 1e-3


@torch.no_grad()
def test_map_with_one_view_gives_it_all_the_weight():
    model, _ = make("map", views=(0,))
    _, w = model.encode_views(torch.from_numpy(scene_views(1))[None])
    torch.testing.assert_close(w, torch.ones(1, 1))


def test_tile_views_by_hand():
    views = torch.zeros(1, 4, 3, 2, 2)
    for k in range(4):
        views[0, k] = k + 1
    tiled = tile_views(views)[0, 0, 0]                          # one channel of the 2x2 grid, area-resized to 2x2
    assert tiled.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    nine = tile_views(torch.rand(2, 9, 3, 8, 8))
    assert nine.shape == (2, 1, 3, 8, 8)
    one = torch.rand(2, 1, 3, 8, 8)
    assert torch.equal(tile_views(one), one)


@torch.no_grad()
def test_forward_shapes_and_batching():
    model, feat = make("map")
    imgs = torch.from_numpy(np.stack([scene_views(4, 0), scene_views(4, 1)]))
    f, mask = feat(QUESTIONS)
    logits = model(imgs, f, mask, scene=torch.tensor([0, 1, 1]))
    assert logits.shape == (3,)
    single = model(imgs[1:], f[1:], mask[1:], scene=torch.tensor([0, 0]))
    torch.testing.assert_close(single, logits[1:], rtol=0, atol=1e-5)


def test_bad_inputs_name_what_is_expected():
    model, _ = make("map")
    with pytest.raises(ValueError, match=r"\(B, n, 16, 16, 3\)"):
        model.encode_views(torch.zeros(1, 4, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="reads 4 views"):
        model.encode_views(torch.zeros(1, 3, 16, 16, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="valid: map, concat, tile, mean"):
        MIAVLMConfig(fusion="sum")
    with pytest.raises(ValueError, match="valid: effnet, cnn"):
        MIAVLMConfig(view_encoder="vit")
    with pytest.raises(ValueError, match="valid: minilm, words"):
        MIAVLMConfig(question_encoder="bert")
    with pytest.raises(ValueError, match="multiple of 8"):
        MIAVLMConfig(image_size=20)
    with pytest.raises(ValueError, match="valid: 1, 1\\+8"):
        view_set("3")
    with pytest.raises(ValueError, match="views"):
        ask(model, scene_views(3), "Is the block red?")


def test_word_featurizer():
    cfg = MIAVLMConfig(question_encoder="words", vocabulary=build_vocabulary(["Is the block red?"]))
    feats, mask = QuestionFeaturizer(cfg)(["Is the block red?", "Is the ring orange?"])
    vocab = cfg.vocabulary
    assert vocab == ("?", "block", "is", "red", "the")
    assert feats[0].tolist() == [vocab.index(w) + 2 for w in ("is", "the", "block", "red", "?")]
    assert feats[1, 3].item() == 1 and feats[1, 2].item() == 1   # unknown words share id 1
    assert mask.all()
    with pytest.raises(ValueError, match="no questions"):
        QuestionFeaturizer(cfg)([])


@pytest.mark.parametrize("fusion", ["map", "mean"])
@torch.no_grad()
def test_a_view_mask_is_the_same_as_leaving_those_views_out(fusion):
    """View dropout in training masks views; MAP (and mean) fusion must then behave exactly as on the views kept."""
    model, _ = make(fusion)
    two, _ = make(fusion, views=(0, 1))                       # same seed: the same weights, reading two views
    views = torch.from_numpy(scene_views(4, seed=3))[None]
    mask = torch.tensor([[True, False, True, False]])
    tokens, w = model.encode_views(views, view_mask=mask)
    assert float(w[0, 1]) == 0.0 and float(w[0, 3]) == 0.0
    torch.testing.assert_close(w.sum(1), torch.ones(1))
    tokens_kept, w_kept = two.encode_views(views[:, [0, 2]])
    torch.testing.assert_close(tokens, tokens_kept, rtol=0, atol=1e-5)
    torch.testing.assert_close(w[0, [0, 2]], w_kept[0], rtol=0, atol=1e-6)


@torch.no_grad()
def test_view_mask_errors():
    model, _ = make("map")
    views = torch.from_numpy(scene_views(4))[None]
    with pytest.raises(ValueError, match="at least one view"):
        model.encode_views(views, view_mask=torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(1, 4\)"):
        model.encode_views(views, view_mask=torch.ones(1, 3, dtype=torch.bool))
    concat, _ = make("concat")
    with pytest.raises(ValueError, match="needs map or mean"):
        concat.encode_views(views, view_mask=torch.ones(1, 4, dtype=torch.bool))
