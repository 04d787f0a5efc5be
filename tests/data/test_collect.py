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


def test_bad_worker_counts_fail_before_any_work(tmp_path):
    """Parallel collection itself (Ray workers, same dataset as one worker) is tested in tests/test_parallel.py."""
    for workers in (0, -1, 1.5):
        with pytest.raises(ValueError, match="--workers must be an integer >= 1"):
            collect("put-block-in-bowl-seen-colors", "train", 1, tmp_path / "x", progress=False, workers=workers)
    assert not (tmp_path / "x").exists()


def test_more_workers_than_episodes_are_capped(tmp_path, monkeypatch):
    import vlarm.data.collect as collect_module

    monkeypatch.setattr(collect_module, "init_ray", lambda *a, **k: pytest.fail("started Ray for one episode"))
    report = collect("put-block-in-bowl-seen-colors", "train", 1, tmp_path / "d", camera_scale=0.25, progress=False,
                     workers=64)
    assert report.episodes == 1
