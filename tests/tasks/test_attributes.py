import pytest

from vlarm.tasks.attributes import EVAL_COLORS, TRAIN_COLORS, color_rgb, colors_for, seed_split, split_seed


def test_clipport_colour_splits():
    assert set(TRAIN_COLORS) == {"blue", "red", "green", "yellow", "brown", "gray", "cyan"}
    assert set(EVAL_COLORS) == {"blue", "red", "green", "orange", "purple", "pink", "white"}
    assert colors_for("train", unseen=True) == TRAIN_COLORS
    assert colors_for("test", unseen=True) == EVAL_COLORS
    assert colors_for("test", unseen=False) == TRAIN_COLORS


def test_seed_convention():
    assert [split_seed("train", i) for i in range(3)] == [0, 2, 4]
    assert [split_seed("val", i) for i in range(3)] == [1, 3, 5]
    assert [split_seed("test", i) for i in range(3)] == [10001, 10003, 10005]
    assert {seed_split(split_seed(s, 7)) for s in ("train", "val", "test")} == {"train", "val", "test"}


def test_errors_name_valid_values():
    with pytest.raises(ValueError, match="valid splits: train, val, test"):
        split_seed("dev", 0)
    with pytest.raises(ValueError, match="known colours: blue, red"):
        color_rgb("magenta")
