"""EpisodeWriter: exact round trip, LeRobot v3.0 layout on disk, seed bookkeeping, argument checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vlarm.data import DatasetError, EpisodeDataset, EpisodeWriter

from .conftest import SMALL, TASK, make_episode


def _write(root, seeds, **kw):
    with EpisodeWriter(root, TASK, "train", image_shape=SMALL, **kw) as w:
        for s in seeds:
            w.add_episode(make_episode(s), seed=s, total_reward=1.0)
    return w


def test_round_trip_is_exact(tmp_path):
    seeds = [4, 0, 2, 7]
    _write(tmp_path, seeds)
    ds = EpisodeDataset(tmp_path)
    assert ds.num_episodes == 4 and len(ds) == sum(len(make_episode(s)) for s in seeds)
    i = 0
    for ep, s in enumerate(seeds):
        frames = make_episode(s)
        got = ds.episode_frames(ep)
        assert len(got) == len(frames)
        for t, (want, have) in enumerate(zip(frames, got, strict=True)):
            assert have["colormap"].dtype == np.uint8 and have["colormap"].shape == (*SMALL, 3)
            np.testing.assert_array_equal(have["colormap"], want["colormap"])
            assert have["heightmap"].dtype == np.float32
            assert have["heightmap"].tobytes() == want["heightmap"].tobytes()  # bit-exact
            for key in ("state", "pick_pose", "place_pose"):
                assert have[key].dtype == np.float32 and have[key].shape == (7,)
                assert have[key].tobytes() == want[key].tobytes()
            assert have["reward"] == pytest.approx(want["reward"])
            assert have["done"] == want["done"]
            assert have["instruction"] == want["instruction"]
            assert (have["episode_index"], have["frame_index"]) == (ep, t)
            flat = ds[i]
            np.testing.assert_array_equal(flat["heightmap"], have["heightmap"])
            assert flat["instruction"] == have["instruction"]
            i += 1
    assert ds.seeds == seeds


def test_layout_reads_with_pandas(tmp_path):
    _write(tmp_path, [0, 1, 2])
    info = json.loads((tmp_path / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 1
    assert info["total_episodes"] == 3 and info["total_frames"] == 1 + 2 + 3
    assert info["splits"] == {"train": "0:3"} and info["benchmark_task"] == TASK

    data = pd.concat(
        [pd.read_parquet(tmp_path / f"data/chunk-000/file-{e:03d}.parquet") for e in range(3)],
        ignore_index=True,
    )
    assert list(data.columns) == list(info["features"])
    assert data["index"].tolist() == list(range(6))
    assert data["episode_index"].tolist() == [0, 1, 1, 2, 2, 2]
    assert data["frame_index"].tolist() == [0, 0, 1, 0, 1, 2]
    np.testing.assert_array_equal(data["timestamp"], data["frame_index"] / info["fps"])
    img = data["observation.images.color"][0]
    assert set(img) == {"bytes", "path"} and img["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data["action"][0]) == 14 and len(data["observation.state"][0]) == 7
    assert data["next.done"].tolist() == [True, False, True, False, False, True]

    tasks = pd.read_parquet(tmp_path / "meta/tasks.parquet")
    assert tasks.index.name == "task" and tasks["task_index"].tolist() == [0, 1, 2]
    assert tasks.loc["put the red blocks in a gray bowl", "task_index"] == 0
    assert data["task_index"].tolist() == [0, 0, 1, 0, 1, 2]

    eps = pd.read_parquet(tmp_path / "meta/episodes/chunk-000/file-000.parquet")
    for col in (
        "episode_index",
        "tasks",
        "length",
        "data/chunk_index",
        "data/file_index",
        "dataset_from_index",
        "dataset_to_index",
        "seed",
        "benchmark_task",
        "split",
        "total_reward",
    ):
        assert col in eps.columns, col
    assert eps["length"].tolist() == [1, 2, 3]
    assert eps["dataset_from_index"].tolist() == [0, 1, 3] and eps["dataset_to_index"].tolist() == [1, 3, 6]
    assert eps["data/file_index"].tolist() == [0, 1, 2] and (eps["data/chunk_index"] == 0).all()
    assert list(eps["tasks"][2]) == [
        "put the red blocks in a gray bowl",
        "put the blue blocks in a gray bowl",
        "put the green blocks in a gray bowl",
    ]
    assert (eps["split"] == "train").all() and eps["seed"].tolist() == [0, 1, 2]

    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    assert np.asarray(stats["observation.images.color"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [6] and len(stats["action"]["std"]) == 14
    all_hm = np.stack(data["observation.heightmap"].map(lambda a: np.stack(a)).tolist())
    np.testing.assert_allclose(stats["observation.heightmap"]["mean"], [all_hm.mean(dtype=np.float64)])


def test_chunks_roll_over(tmp_path):
    _write(tmp_path, range(5), chunks_size=2)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("data/*/*.parquet")) == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "data/chunk-001/file-000.parquet",
        "data/chunk-001/file-001.parquet",
        "data/chunk-002/file-000.parquet",
    ]
    ds = EpisodeDataset(tmp_path)
    assert ds.seeds == [0, 1, 2, 3, 4]
    assert ds.episodes["data/chunk_index"].tolist() == [0, 0, 1, 1, 2]


def test_seed_bookkeeping(tmp_path):
    w = EpisodeWriter(tmp_path, TASK, "val", image_shape=SMALL)
    w.add_episode(make_episode(1), seed=1, total_reward=1.0)
    with pytest.raises(ValueError, match="seed 1 is already written as episode 0"):
        w.add_episode(make_episode(1), seed=1, total_reward=1.0)
    w.reject(3)
    w.reject(3)
    w.reject(np.int64(5))
    with pytest.raises(ValueError, match="cannot reject"):
        w.reject(1)
    assert w.completed_seeds() == {1} and w.rejected_seeds() == {3, 5}
    w.add_episode(make_episode(5), seed=5, total_reward=1.0)  # data wins over an earlier rejection
    assert w.rejected_seeds() == {3} and w.num_episodes == 2
    w.close()
    w2 = EpisodeWriter(tmp_path, TASK, "val", image_shape=SMALL)
    assert w2.completed_seeds() == {1, 5} and w2.rejected_seeds() == {3}
    w2.close()
    rejected = json.loads((tmp_path / "meta/rejected_seeds.json").read_text())
    assert rejected == {"benchmark_task": TASK, "split": "val", "seeds": [3]}


def test_close_is_idempotent_and_final(tmp_path):
    w = EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)
    w.close()
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.add_episode(make_episode(0), seed=0, total_reward=1.0)
    with pytest.raises(RuntimeError, match="closed"):
        w.reject(0)
    ds = EpisodeDataset(tmp_path)  # an empty dataset is valid
    assert len(ds) == 0 and ds.num_episodes == 0


def test_reopen_with_other_dataset_parameters_fails(tmp_path):
    _write(tmp_path, [0])
    with pytest.raises(DatasetError, match="benchmark_task: dataset has 'put-block-in-bowl-seen-colors'"):
        EpisodeWriter(tmp_path, "packing-shapes", "train", image_shape=SMALL)
    with pytest.raises(DatasetError, match="split"):
        EpisodeWriter(tmp_path, TASK, "test", image_shape=SMALL)
    with pytest.raises(DatasetError, match="fps"):
        EpisodeWriter(tmp_path, TASK, "train", fps=2, image_shape=SMALL)


def test_second_writer_is_locked_out(tmp_path):
    w = EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)
    with pytest.raises(DatasetError, match="another EpisodeWriter"):
        EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)
    w.close()
    EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL).close()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.pop("heightmap"), "lacks keys"),
        (lambda f: f.update(colormap=np.zeros((*SMALL, 3), np.float32)), "colormap must be uint8"),
        (lambda f: f.update(colormap=np.zeros((8, 8, 3), np.uint8)), "colormap must be uint8"),
        (lambda f: f.update(heightmap=np.zeros(SMALL, np.int32)), "heightmap must be float"),
        (lambda f: f["heightmap"].__setitem__((0, 0), np.nan), "non-finite"),
        (lambda f: f.update(state=np.zeros(6)), "state must be 7"),
        (lambda f: f.update(place_pose=[0, 0, 0, 0, 0, 0, np.inf]), "place_pose must be 7"),
        (lambda f: f.update(done=1), "done must be a bool"),
        (lambda f: f.update(instruction=""), "instruction"),
        (lambda f: f.update(reward=float("nan")), "reward must be finite"),
    ],
)
def test_bad_frames_are_refused(tmp_path, mutate, message):
    frames = make_episode(2)
    mutate(frames[1])
    with EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL) as w:
        with pytest.raises(ValueError, match=message):
            w.add_episode(frames, seed=2, total_reward=1.0)
        with pytest.raises(ValueError, match="non-empty list"):
            w.add_episode([], seed=2, total_reward=1.0)
        assert w.num_episodes == 0
    assert not list(tmp_path.glob("data/**/*.parquet"))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split"):
        EpisodeWriter(tmp_path, TASK, "training")
    with pytest.raises(ValueError, match="fps"):
        EpisodeWriter(tmp_path, TASK, "train", fps=0)
    with EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL) as w:
        with pytest.raises(ValueError, match="seed must be an integer"):
            w.add_episode(make_episode(0), seed=1.5, total_reward=1.0)
        with pytest.raises(ValueError, match="total_reward"):
            w.add_episode(make_episode(0), seed=0, total_reward=float("inf"))


def test_stats_json_has_lerobot_quantiles_and_bool_stats(tmp_path):
    seeds = [0, 1, 2, 3, 4, 5]
    _write(tmp_path, seeds)
    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    frames = [f for s in seeds for f in make_episode(s)]
    names = ["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]
    for key in ("observation.images.color", "observation.heightmap", "observation.state", "action",
                "next.reward", "next.done", "frame_index"):
        assert list(stats[key]) == names, key
    done = stats["next.done"]
    assert done["count"] == [len(frames)] and done["min"] == [0.0] and done["max"] == [1.0]
    assert done["mean"] == [pytest.approx(np.mean([f["done"] for f in frames]))]
    assert np.asarray(stats["observation.images.color"]["q50"]).shape == (3, 1, 1)
    # LeRobot's QUANTILES normaliser on the written stats maps the actions into about [-1, 1].
    act = stats["action"]
    x = np.stack([np.concatenate([f["pick_pose"], f["place_pose"]]) for f in frames]).astype(np.float64)
    q01, q99 = np.asarray(act["q01"]), np.asarray(act["q99"])
    np.testing.assert_allclose(q01, np.quantile(x, 0.01, axis=0), rtol=1e-12)  # pooled exactly over episodes
    np.testing.assert_allclose(act["q50"], np.quantile(x, 0.5, axis=0), rtol=1e-12)
    assert (q99 > q01).all()
    z = 2.0 * (x - q01) / (q99 - q01) - 1.0
    assert np.isfinite(z).all() and (np.abs(z) < 1.5).all() and (np.abs(z) <= 1.0 + 1e-9).mean() > 0.8
    # The per-episode stats are in meta/episodes as LeRobot keeps them.
    eps = pd.read_parquet(tmp_path / "meta/episodes/chunk-000/file-000.parquet")
    assert "stats/next.done/q99" in eps.columns and "stats/action/q01" in eps.columns
    assert eps["stats/next.done/max"].map(list).tolist() == [[1.0]] * len(seeds)


def test_resuming_a_dataset_written_before_quantiles(tmp_path):
    import pyarrow.parquet as pq

    from vlarm.data.storage import EPISODE_META_KEY, PARQUET_OPTIONS

    _write(tmp_path, [0, 1])
    for path in sorted(tmp_path.glob("data/*/*.parquet")):  # make the files look like an older vlarm's
        table = pq.read_table(path)
        record = json.loads(table.schema.metadata[EPISODE_META_KEY])
        record.pop("quantile_sketch")
        del record["stats"]["next.done"]
        for st in record["stats"].values():
            for q in ("q01", "q10", "q50", "q90", "q99"):
                del st[q]
        table = table.replace_schema_metadata({EPISODE_META_KEY: json.dumps(record).encode()})
        pq.write_table(table, path, **PARQUET_OPTIONS)
    _write(tmp_path, [2])
    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    assert "next.done" not in stats and list(stats["action"]) == ["min", "max", "mean", "std", "count"]
    assert stats["action"]["count"] == [sum(len(make_episode(s)) for s in (0, 1, 2))]
    ds = EpisodeDataset(tmp_path)
    assert ds.num_episodes == 3 and "stats/action/q01" not in ds.episodes.columns


def test_lock_file_is_removed_when_the_writer_finishes(tmp_path):
    lock = tmp_path / ".writer.lock"
    with EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL) as w:
        w.add_episode(make_episode(0), seed=0, total_reward=1.0)
        assert lock.exists()  # held while collecting ...
        with pytest.raises(DatasetError, match="another EpisodeWriter"):
            EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)
        assert lock.exists()  # ... and a refused writer does not remove it
    assert not lock.exists() and not list(tmp_path.glob(".writer*"))  # the finished dataset is clean
    with pytest.raises(DatasetError, match="different dataset"):
        EpisodeWriter(tmp_path, TASK, "test", image_shape=SMALL)  # a failed open leaves none either
    assert not lock.exists()
    w = EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)  # resuming works as before
    assert w.num_episodes == 1 and lock.exists()
    w.close()
    assert not lock.exists() and EpisodeDataset(tmp_path).num_episodes == 1


def test_lock_on_a_just_removed_lock_file_is_retried(tmp_path, monkeypatch):
    # Writer B opens the lock file, writer A removes it and unlocks, B then locks the removed file: B must
    # notice and lock the file at the path instead, or a third writer would get in beside it.
    import os

    from vlarm.data import writer as writer_module

    real_open, calls = os.open, []

    def racing_open(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        if str(path).endswith(".writer.lock") and not calls:
            calls.append(path)
            os.unlink(path)  # the previous holder finished right after our open
        return fd

    monkeypatch.setattr(writer_module.os, "open", racing_open)
    w = EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)
    monkeypatch.setattr(writer_module.os, "open", real_open)
    assert calls and (tmp_path / ".writer.lock").exists()
    with pytest.raises(DatasetError, match="another EpisodeWriter"):
        EpisodeWriter(tmp_path, TASK, "train", image_shape=SMALL)
    w.close()
    assert not (tmp_path / ".writer.lock").exists()
