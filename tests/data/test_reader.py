"""EpisodeDataset: validation on open, corrupt files, views, indexing and the torch wrapper."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlarm.data import DatasetError, EpisodeDataset, EpisodeWriter

from .conftest import SMALL, TASK, make_episode

SEEDS = [0, 1, 2, 3, 4]


@pytest.fixture
def root(tmp_path):
    with EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL) as w:
        for s in SEEDS:
            w.add_episode(make_episode(s), seed=s, total_reward=1.0)
    return tmp_path


def test_truncated_data_file_detected_on_open(root):
    path = root / "data/chunk-000/file-002.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"file-002.parquet: corrupt or truncated parquet") as e:
        EpisodeDataset(root)
    assert "rerun collection" in str(e.value)
    with pytest.raises(DatasetError, match="file-002.parquet: corrupt or truncated"):
        EpisodeWriter(root, TASK, "train", image_shape=SMALL)


def test_damaged_pages_detected_by_checksum(root):
    path = root / "data/chunk-000/file-002.parquet"
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8  # parquet ends with <footer><footer length>PAR1
    for i in range(64, (len(data) - footer) // 2, 97):  # scribble over pages, keep the footer intact
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    ds = EpisodeDataset(root)  # footers are fine, so open succeeds ...
    with pytest.raises(DatasetError, match="file-002.parquet"):
        ds.load()  # ... and reading the pages fails with a clear error, never with garbage
    ds.episode_frames(1)  # other episodes still read


def test_missing_root_and_meta(tmp_path, root):
    with pytest.raises(DatasetError, match="does not exist"):
        EpisodeDataset(tmp_path / "nowhere")
    (root / "meta/tasks.parquet").unlink()
    with pytest.raises(DatasetError, match=r"tasks.parquet: missing or unreadable .*EpisodeWriter"):
        EpisodeDataset(root)


def test_meta_disagreeing_with_info_is_reported(root):
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["total_episodes"] = 4
    info["splits"] = {"train": "0:4"}
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="5 episodes, info.json says 4"):
        EpisodeDataset(root)
    info_path.write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="codebase_version"):
        EpisodeDataset(root)
    EpisodeWriter(root, TASK, "train", image_shape=SMALL).close()  # the fix the message names
    assert EpisodeDataset(root).num_episodes == 5


def test_foreign_parquet_in_data_is_reported(root):
    (root / "data/chunk-000/file-005.parquet").write_bytes((root / "meta/tasks.parquet").read_bytes())
    with pytest.raises(DatasetError, match="not listed"):
        EpisodeDataset(root)
    with pytest.raises(DatasetError, match="not a vlarm episode file"):
        EpisodeWriter(root, TASK, "train", image_shape=SMALL)


def test_select_episodes(root):
    ds = EpisodeDataset(root)
    lengths = [len(make_episode(s)) for s in SEEDS]
    for n in (0, 1, 3, 5):
        view = ds.select_episodes(n)
        assert view.num_episodes == n and len(view) == sum(lengths[:n])
        assert view.seeds == SEEDS[:n] and len(view.episodes) == n
    view = ds.select_episodes(2)
    assert view[-1]["episode_index"] == 1 and ds[-1]["episode_index"] == 4
    with pytest.raises(IndexError):
        view[len(view)]
    with pytest.raises(IndexError):
        view.episode_frames(2)
    with pytest.raises(ValueError, match="has only 5"):
        ds.select_episodes(6)
    with pytest.raises(ValueError, match="non-negative"):
        ds.select_episodes(-1)
    assert ds.num_episodes == 5  # the parent is unchanged


def test_select_episode_list_keeps_original_indices(root):
    ds = EpisodeDataset(root)
    lengths = [len(make_episode(s)) for s in SEEDS]  # [1, 2, 3, 1, 2]
    view = ds.select_episodes([3, 0, 2])
    assert view.num_episodes == 3 and view.episode_indices == [3, 0, 2]
    assert view.seeds == [SEEDS[3], SEEDS[0], SEEDS[2]] and len(view) == lengths[3] + lengths[0] + lengths[2]
    assert view.episodes["episode_index"].tolist() == [3, 0, 2]
    # Frames in view order: episode 3 (1 frame), then 0 (1 frame), then 2 (3 frames), each with its own frame_index.
    got = [(view[i]["episode_index"], view[i]["frame_index"]) for i in range(len(view))]
    assert got == [(3, 0), (0, 0), (2, 0), (2, 1), (2, 2)]
    assert view[-1]["episode_index"] == 2 and view[-1]["frame_index"] == 2
    with pytest.raises(IndexError):
        view[len(view)]
    # The content is that of the original episode, not of the episode at the same position.
    for i, (e, t) in enumerate(got):
        np.testing.assert_array_equal(view[i]["colormap"], make_episode(SEEDS[e])[t]["colormap"])
    frames = view.episode_frames(2)
    assert [f["episode_index"] for f in frames] == [2, 2, 2] and [f["frame_index"] for f in frames] == [0, 1, 2]
    np.testing.assert_array_equal(frames[1]["heightmap"], make_episode(2)[1]["heightmap"])
    assert [f["episode_index"] for f in view] == [3, 0, 2, 2, 2]
    # Views of views select by original index, and an int still means "the first n of this view".
    assert view.select_episodes([2]).seeds == [2] and view.select_episodes(2).episode_indices == [3, 0]
    assert ds.select_episodes(range(1, 4)).episode_indices == [1, 2, 3]
    assert ds.select_episodes(np.array([4, 1])).seeds == [4, 1] and ds.select_episodes([]).num_episodes == 0
    # Uncached datasets read the right files too.
    uncached = EpisodeDataset(root, cache=False).select_episodes([4, 1])
    assert [(f["episode_index"], f["frame_index"]) for f in uncached] == [(4, 0), (4, 1), (1, 0), (1, 1)]
    assert ds.num_episodes == 5 and ds.episode_indices == [0, 1, 2, 3, 4]  # the parent is unchanged


def test_select_episode_list_errors_name_the_valid_range(root):
    ds = EpisodeDataset(root)
    for bad, message in [
        ([0, 5], r"episode index 5 does not exist: valid episode indices are 0\.\.4"),
        ([-1], r"episode index -1 does not exist: valid episode indices are 0\.\.4"),
        ([1, 2, 1], r"episode index 1 is repeated.*0\.\.4"),
        ([1.0], r"must be integers in 0\.\.4"),
        ([True], r"must be integers in 0\.\.4"),
        ("3", r"count \(int\) or a list of episode indices in 0\.\.4"),
        (2.0, r"count \(int\) or a list"),
    ]:
        with pytest.raises(ValueError, match=message):
            ds.select_episodes(bad)
    view = ds.select_episodes([4, 1])
    with pytest.raises(ValueError, match=r"episode index 0 does not exist: valid episode indices are \[1, 4\]"):
        view.select_episodes([0])


def test_torch_wrapper_of_a_subset(root):
    torch = pytest.importorskip("torch")
    view = EpisodeDataset(root).select_episodes([4, 2])
    ds = view.to_torch()
    assert len(ds) == len(view) == 5
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch["episode_index"].tolist() == [4, 4, 2, 2, 2] and batch["frame_index"].tolist() == [0, 1, 0, 1, 2]


def test_frames_are_independent_copies(root):
    ds = EpisodeDataset(root)
    a = ds[0]
    a["colormap"][:] = 0
    a["heightmap"][:] = -1
    b = ds[0]
    np.testing.assert_array_equal(b["colormap"], make_episode(0)[0]["colormap"])
    assert (b["heightmap"] >= 0).all()
    with pytest.raises(TypeError):
        ds["0"]


def test_uncached_reads_match(root):
    cached, uncached = EpisodeDataset(root), EpisodeDataset(root, cache=False)
    for i in range(len(cached)):
        a, b = cached[i], uncached[i]
        np.testing.assert_array_equal(a["colormap"], b["colormap"])
        assert a["instruction"] == b["instruction"]
    assert len(list(iter(cached))) == len(cached)


def test_stats_and_info(root):
    ds = EpisodeDataset(root)
    assert ds.info["total_frames"] == len(ds) and ds.fps == 1
    assert ds.stats["observation.state"]["count"] == [len(ds)]
    (root / "meta/stats.json").unlink()
    with pytest.raises(DatasetError, match="stats.json: missing"):
        _ = ds.stats


def test_torch_wrapper(root):
    torch = pytest.importorskip("torch")
    ds = EpisodeDataset(root).to_torch()
    assert isinstance(ds, torch.utils.data.Dataset) and len(ds) == len(EpisodeDataset(root))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["colormap"].shape == (3, *SMALL, 3) and batch["colormap"].dtype == torch.uint8
    assert batch["heightmap"].dtype == torch.float32 and batch["pick_pose"].shape == (3, 7)
    assert len(batch["instruction"]) == 3 and isinstance(batch["instruction"][0], str)
