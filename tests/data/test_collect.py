import pytest

from vlarm.data import EpisodeDataset
from vlarm.data.collect import collect


def test_collect_resumes_to_exact_count(tmp_path):
    root = tmp_path / "ds"
    first = collect("put-block-in-bowl-seen-colors", "train", 1, root, camera_scale=0.5, progress=False)
    assert first.new_episodes == 1
    second = collect("put-block-in-bowl-seen-colors", "train", 2, root, camera_scale=0.5, progress=False)
    assert second.new_episodes == 1 and second.episodes == 2
    ds = EpisodeDataset(root)
    assert ds.num_episodes == 2 and sorted(ds.seeds) == [0, 2]
    frame = ds[0]
    assert frame["instruction"].startswith("put the ") and frame["pick_pose"].shape == (7,)
    assert (frame["heightmap"] > 0.03).any()


def test_collect_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="valid tasks"):
        collect("nope", "train", 1, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="positive"):
        collect("put-block-in-bowl-seen-colors", "train", 0, tmp_path / "x", progress=False)


def test_parallel_workers_write_the_same_dataset_as_one(tmp_path):
    """Issue 10: workers roll out episodes, the parent writes them in seed order: same seeds, same frames."""
    import numpy as np

    args = ("put-block-in-bowl-seen-colors", "train", 3)
    one = collect(*args, tmp_path / "one", camera_scale=0.25, progress=False)
    two = collect(*args, tmp_path / "two", camera_scale=0.25, progress=False, workers=2)
    assert one.episodes == two.episodes == 3
    a, b = EpisodeDataset(tmp_path / "one"), EpisodeDataset(tmp_path / "two")
    assert a.seeds == b.seeds and len(a) == len(b)
    for i in range(len(a)):
        fa, fb = a[i], b[i]
        assert np.array_equal(fa["colormap"], fb["colormap"]) and np.array_equal(fa["pick_pose"], fb["pick_pose"])
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        collect(*args, tmp_path / "x", progress=False, workers=0)
