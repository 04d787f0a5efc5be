import numpy as np
import pytest

from vlarm.vlm.data import CsvImageCaptionDataset
from vlarm.vlm.sim_captions import (
    UNSEEN_COLORS,
    CaptionConfig,
    fill_holes,
    read_objects,
    relation,
    render_samples,
    scene_caption,
    write_caption_csv,
)


def test_relation_words_by_hand():
    assert relation((100, 10), (100, 80)) == "left of"
    assert relation((100, 80), (100, 10)) == "right of"
    assert relation((10, 50), (200, 60)) == "above"
    assert relation((200, 50), (10, 60)) == "below"
    assert relation((100, 100), (105, 110)) is None
    cap = scene_caption([("red", "block", (0, 0)), ("blue", "bowl", (0, 100))], np.random.default_rng(0))
    assert cap.startswith("a red block and a blue bowl on a table; the ")
    assert "red block is left of the blue bowl" in cap or "blue bowl is right of the red block" in cap


def test_fill_holes_uses_nearest_seen_pixel():
    img = np.zeros((3, 3, 3), np.uint8)
    img[0, 0] = (10, 20, 30)
    img[2, 2] = (200, 0, 0)
    out = fill_holes(img)
    assert tuple(out[0, 1]) == (10, 20, 30) and tuple(out[2, 1]) == (200, 0, 0) and out.any(-1).all()


def test_render_split_respects_colours_and_held_out_combos(tmp_path):
    cfg = CaptionConfig(
        n_scenes=2, colors=("red", "blue"), held_out_combos=(("red", "bowl"),), seed=3, camera_scale=0.25
    )
    samples = render_samples(cfg, progress=False)
    crops = [s for s in samples if s.kind == "crop"]
    scenes = [s for s in samples if s.kind == "scene"]
    assert len(scenes) == 2 and len(crops) >= 4
    assert all(s.image.shape == (48, 48, 3) for s in crops) and all(s.image.shape == (320, 320, 3) for s in scenes)
    for s in crops:
        colour, kind, _ = s.objects[0]
        assert colour in ("red", "blue") and (colour, kind) != ("red", "bowl")
        assert f"{colour} {kind}" in s.caption
    # The crop is centred on its object: its centre pixel has (roughly) the object's colour, not the table's.
    red = [s for s in crops if s.objects[0][0] == "red"]
    if red:
        centre = red[0].image[24, 24].astype(int)
        assert centre[0] > centre[2] + 50
    csv_path = write_caption_csv(samples, tmp_path, "train", cfg)
    ds = CsvImageCaptionDataset(csv_path)
    assert len(ds) == len(samples) and ds[0][1] == samples[0].caption
    assert ds[0][0].shape == samples[0].image.shape
    rows = read_objects(csv_path)
    assert [r[0] for r in rows] == [s.kind for s in samples]
    assert rows[-1][1] == [(c, k, tuple(p)) for c, k, p in samples[-1].objects]


def test_unseen_colours_are_disjoint_from_train():
    from vlarm.tasks.attributes import TRAIN_COLORS

    assert set(UNSEEN_COLORS) == {"orange", "purple", "pink", "white"}
    assert not set(UNSEEN_COLORS) & set(TRAIN_COLORS)
    with pytest.raises(ValueError, match="no colour-object combination"):
        render_samples(
            CaptionConfig(n_scenes=1, colors=("red",), kinds=("block",), held_out_combos=(("red", "block"),)),
            progress=False,
        )
