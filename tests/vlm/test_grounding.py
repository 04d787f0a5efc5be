"""Phrase grounding with a dual encoder: phrases, proposals, isolated crops and relevance maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlarm.vlm.grounding import (
    PhraseGrounder,
    fit_calibration,
    isolated_crops,
    mask_phrases,
    object_proposals,
    referring_phrases,
    select_phrases,
)
from vlarm.vlm.model import DualEncoder

RGB = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
TABLE = (90, 90, 90)


def test_referring_phrases_split_on_function_words():
    assert referring_phrases("put the red blocks in a green bowl") == ["red blocks", "green bowl"]
    assert referring_phrases("Pick up the Blue block, then place it on the yellow zone.") == [
        "blue block",
        "yellow zone",
    ]
    assert referring_phrases("put it in") == []


def test_no_family_verb_is_grounded_as_an_object():
    """Every task family's example instruction: its verb is not a referring phrase ("pack", "align", "solve" were,
    so the VLM semantic stream mapped "pack" instead of the letter shape)."""
    from vlarm.tasks import list_families
    from vlarm.tasks.routing import family_example

    for family in list_families():
        example = family_example(family)
        verb = example.split()[0]
        assert verb not in referring_phrases(example), (family, example)
    assert select_phrases("pack the letter E shape in the brown box", 2) == ["letter e shape", "brown box"]
    assert select_phrases("push the pile of red blocks into the green square", 2) == ["red blocks", "green square"]


def test_select_phrases_pick_and_place():
    assert select_phrases("put the red blocks in a green bowl", 2) == ["red blocks", "green bowl"]
    assert select_phrases("the red block", 2) == ["red block", "red block"]
    assert select_phrases("put it in", 2) == ["put it in", "put it in"]
    assert select_phrases("put the red blocks in a green bowl", 1) == ["red blocks"]
    assert len(select_phrases("a b c d", 3)) == 3
    with pytest.raises(ValueError, match="n must be"):
        select_phrases("x", 0)


def test_mask_phrases_keeps_head_nouns_of_mapped_phrases():
    """Issue 10: the language stream reads the same text whatever the colours; maps carry the attributes."""
    seen = mask_phrases("put the red block in the green bowl", 2)
    assert seen == "put the block in the bowl"
    assert mask_phrases("Put the ORANGE blocks in a pink bowl.", 2) == "put the blocks in a bowl"
    assert mask_phrases("put the orange block in the pink bowl", 2) == seen
    # a phrase the maps do not cover keeps its attributes
    assert mask_phrases("stack the red block on the blue block then the green one", 2) == (
        "stack the block on the blue block then the one")
    assert mask_phrases("put the red block in the green bowl", 1) == "put the block in the green bowl"
    assert mask_phrases("put it in", 2) == "put it in"  # no phrase: the instruction itself
    with pytest.raises(ValueError, match="n must be"):
        mask_phrases("x", 0)


def _scene():
    """64 x 32 table with a red block at (12, 8), a blue bowl at (44, 20) and a 2-pixel speck (noise)."""
    colormap = np.zeros((64, 32, 3), np.uint8) + np.array(TABLE, np.uint8)
    heightmap = np.zeros((64, 32), np.float32)
    colormap[10:15, 6:11], heightmap[10:15, 6:11] = RGB["red"], 0.04
    colormap[40:49, 16:25], heightmap[40:49, 16:25] = RGB["blue"], 0.02
    heightmap[60, 0:2] = 0.01
    return colormap, heightmap


def test_object_proposals_find_objects_and_drop_noise():
    _, heightmap = _scene()
    labels, centres = object_proposals(heightmap, min_area=5)
    assert centres == [(12, 8), (44, 20)]
    assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1, 2}
    assert (labels == 1).sum() == 25 and labels[60, 0] == 0
    assert object_proposals(np.zeros((8, 8), np.float32))[1] == []


def test_isolated_crops_paint_out_neighbours():
    colormap, heightmap = _scene()
    labels, centres = object_proposals(heightmap, min_area=5)
    crops = isolated_crops(colormap, labels, centres, 64)
    assert crops[0].shape == (64, 64, 3)
    # The red crop keeps red and no blue (painted in table grey); the blue crop the reverse.
    has = lambda crop, c: bool((crop == np.array(RGB[c], np.uint8)).all(-1).any())  # noqa: E731
    assert has(crops[0], "red") and not has(crops[0], "blue")
    assert has(crops[1], "blue") and not has(crops[1], "red")


class MeanColourEncoder(DualEncoder):
    """A hand-made dual encoder: an image is its mean non-grey colour, a text the colour it names."""

    def encode_image(self, images, normalize=False):
        x = images.flatten(2)  # (B, 3, P)
        grey = (x.max(1).values - x.min(1).values) < 20
        w = (~grey).float()[:, None]
        out = (x * w).sum(-1) / w.sum(-1).clamp(min=1)
        return F.normalize(out - 90, dim=-1) if normalize else out - 90

    def encode_text(self, tokens, normalize=False):
        out = torch.tensor([[float(v) - 90 for v in RGB[t.split()[-2]]] for t in tokens])
        return F.normalize(out, dim=-1) if normalize else out


def _grounder():
    def transform(img):
        return torch.as_tensor(img).permute(2, 0, 1).float()

    return PhraseGrounder(MeanColourEncoder(), transform, lambda texts: list(texts), crop_size=16,
                          template="the {} thing")


def test_relevance_maps_light_up_the_named_object():
    colormap, heightmap = _scene()
    maps = _grounder().relevance_maps(colormap, heightmap, ["red", "blue"])
    assert maps.shape == (2, 64, 32) and maps.dtype == np.float32
    assert maps[0, 12, 8] == pytest.approx(1.0) and maps[0, 44, 20] < 1e-3
    assert maps[1, 44, 20] == pytest.approx(1.0) and maps[1, 12, 8] < 1e-3
    assert maps[:, 0, 31].tolist() == [0.0, 0.0]  # table
    assert (maps >= 0).all() and (maps <= 1).all()


def test_relevance_maps_without_objects_are_zero():
    colormap, _ = _scene()
    maps = _grounder().relevance_maps(colormap, np.zeros((64, 32), np.float32), ["red"])
    assert maps.shape == (1, 64, 32) and not maps.any()


def test_grounder_from_pretrained_reports_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a built-in model"):
        PhraseGrounder.from_pretrained(tmp_path / "missing")


def _two_reds():
    """Two red blocks of slightly different shades and a blue bowl."""
    colormap, heightmap = _scene()
    colormap[25:30, 20:25], heightmap[25:30, 20:25] = (200, 70, 40), 0.04
    return colormap, heightmap


def test_relative_maps_are_winner_take_all_calibrated_ones_are_not():
    """Issue 10: two objects of the named colour must both light up (the relative map gives one ~1, one less)."""
    colormap, heightmap = _two_reds()
    grounder = _grounder()
    _, centres, cos = grounder.proposal_similarities(colormap, heightmap, ["red"])
    assert len(centres) == 3 and cos[0, 1] < cos[0, 0]               # the second red is a worse match
    grounder.score, grounder.calibration = "calibrated", (30.0, -24.0)   # sigmoid(30 cos - 24): 0.5 at cos 0.8
    maps = grounder.relevance_maps(colormap, heightmap, ["red"])
    assert maps[0, 12, 8] > 0.9 and maps[0, 27, 22] > 0.9 and maps[0, 44, 20] < 0.01
    assert maps[0, 0, 31] == 0.0                                     # table


def test_fit_calibration_recovers_a_known_logistic_and_refuses_one_class():
    rng = np.random.default_rng(0)
    cos = rng.uniform(-0.2, 1.0, 20000)
    labels = rng.random(20000) < 1 / (1 + np.exp(-(12.0 * cos - 6.0)))
    a, b = fit_calibration(cos, labels)
    assert a == pytest.approx(12.0, rel=0.1) and b == pytest.approx(-6.0, rel=0.1)
    with pytest.raises(ValueError, match="both matching and non-matching"):
        fit_calibration(cos, np.ones_like(cos, bool))
    with pytest.raises(ValueError, match="score must be one of"):
        PhraseGrounder(MeanColourEncoder(), None, None, score="bogus")
    with pytest.raises(ValueError, match="contrast vocabulary"):
        PhraseGrounder(MeanColourEncoder(), None, None, score="softmax")


def test_softmax_score_classifies_each_object_against_a_contrast_vocabulary():
    colormap, heightmap = _two_reds()
    grounder = _grounder()
    grounder.model.logit_scale.data.fill_(np.log(30.0))
    grounder.score, grounder.vocabulary = "softmax", ("red", "green", "blue")
    maps = grounder.relevance_maps(colormap, heightmap, ["red", "blue"])
    assert maps[0, 12, 8] > 0.5 and maps[0, 27, 22] > 0.5          # both reds, not just the best one
    assert maps[0, 44, 20] < 0.1 and maps[1, 44, 20] > 0.5 and maps[1, 12, 8] < 0.1
    # the query's own entry (a synonym: text cosine 1) is not its own contrast, so it is not split in half
    assert grounder.contrast_mask(["red"]).tolist() == [[False, True, True]]
