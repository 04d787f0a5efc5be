import numpy as np
import pytest

from vlarm.tasks.attributes import (
    EVAL_COLORS,
    EVAL_OBJECTS,
    MAX_VAL_EPISODES,
    TRAIN_COLORS,
    color_rgb,
    colors_for,
    is_novel,
    seed_index,
    seed_split,
    split_seed,
)


def test_clipport_colour_splits():
    assert set(TRAIN_COLORS) == {"blue", "red", "green", "yellow", "brown", "gray", "cyan"}
    assert set(EVAL_COLORS) == {"blue", "red", "green", "orange", "purple", "pink", "white"}
    assert colors_for("train", "unseen") == TRAIN_COLORS
    assert colors_for("test", "unseen") == EVAL_COLORS
    assert colors_for("test", "seen") == TRAIN_COLORS


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


def test_val_index_6000_is_refused_not_a_test_seed():
    """Issue 7 item 2: split_seed("val", 6000) used to equal a test seed."""
    with pytest.raises(ValueError, match="val has 5000 episodes"):
        split_seed("val", 6000)
    assert split_seed("val", MAX_VAL_EPISODES - 1) == 9999


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_seed_split_inverts_split_seed_for_many_indices(split):
    rng = np.random.default_rng(0)
    limit = MAX_VAL_EPISODES if split == "val" else 10**9
    indices = [0, 1, 4999, limit - 1, *rng.integers(0, limit, 2000).tolist()]
    for i in indices:
        seed = split_seed(split, i)
        assert seed_split(seed) == split
        assert seed_index(seed) == i


def test_split_seed_sets_are_disjoint():
    n = 20000
    train = {split_seed("train", i) for i in range(n)}
    val = {split_seed("val", i) for i in range(MAX_VAL_EPISODES)}
    test = {split_seed("test", i) for i in range(n)}
    assert not (train & val) and not (train & test) and not (val & test)
    # every non-negative seed belongs to exactly one split, and is that split's seed of its own index
    for seed in range(0, 3 * n, 7):
        assert split_seed(seed_split(seed), seed_index(seed)) == seed
    with pytest.raises(ValueError):
        seed_split(-1)


@pytest.mark.parametrize("kind,value,variant,novel", [
    ("color", "orange", "unseen", True), ("color", "orange", "seen", True), ("color", "orange", "full", False),
    ("color", "red", "unseen", False), ("shape", "heart", "seen", True), ("shape", "heart", "full", False),
    ("object", EVAL_OBJECTS[0], "unseen", True), ("object", EVAL_OBJECTS[0], "full", False),
])
def test_novelty_is_judged_against_the_variants_training_values(kind, value, variant, novel):
    assert is_novel(kind, value, variant) is novel


def test_seen_object_tasks_report_nothing_novel_and_unseen_ones_do():
    from vlarm.envs import make_env

    for task, expected in (("packing-seen-objects-seq", {"none"}), ("packing-unseen-objects-seq", {"all", "some"})):
        env = make_env(task, split="test", camera_scale=0.25)
        try:
            classes = {env.reset(seed=10001 + 2 * i)[1]["novelty"] for i in range(3)}
        finally:
            env.close()
        assert classes and classes <= expected, (task, classes)
