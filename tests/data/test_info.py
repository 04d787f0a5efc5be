"""DatasetInfo validation and (de)serialisation of meta/info.json."""

from __future__ import annotations

import json

import pytest

from vlarm.data import DatasetError, DatasetInfo, vlarm_features
from vlarm.data.info import ACTION_NAMES, DATA_PATH


def _info(**kw) -> DatasetInfo:
    args = {
        "fps": 1,
        "features": vlarm_features(),
        "benchmark_task": "put-block-in-bowl-seen-colors",
        "split": "train",
    }
    args.update(kw)
    return DatasetInfo(**args)


def test_defaults_follow_lerobot_v3():
    d = _info(total_episodes=2, total_frames=5, total_tasks=1, splits={"train": "0:2"}).to_dict()
    assert d["codebase_version"] == "v3.0"
    assert d["data_path"] == DATA_PATH == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert d["video_path"] is None and d["chunks_size"] == 1000
    for key in ("fps", "features", "total_episodes", "total_frames", "total_tasks", "splits", "robot_type"):
        assert key in d
    feats = d["features"]
    assert feats["observation.images.color"]["dtype"] == "image"
    assert feats["observation.images.color"]["shape"] == [320, 160, 3]
    assert feats["observation.heightmap"] == {
        **feats["observation.heightmap"],
        "dtype": "float32",
        "shape": [320, 160],
    }
    assert feats["action"]["names"] == ACTION_NAMES and len(ACTION_NAMES) == 14
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert key in feats


def test_round_trip_keeps_unknown_keys(tmp_path):
    info = _info(total_episodes=1, total_frames=1, total_tasks=1, splits={"train": "0:1"})
    d = info.to_dict() | {"license": "apache-2.0"}
    (tmp_path / "info.json").write_text(json.dumps(d))
    back = DatasetInfo.from_json(tmp_path / "info.json")
    assert back.to_dict() == d
    assert back.extra == {"license": "apache-2.0"}
    assert back.episode_data_path(1234) == "data/chunk-001/file-234.parquet"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"codebase_version": "v2.1"}, "codebase_version"),
        ({"fps": 0}, "fps"),
        ({"fps": 1.5}, "fps"),
        ({"split": "dev"}, "split must be one of"),
        ({"total_frames": -1}, "total_frames"),
        ({"chunks_size": 0}, "chunks_size"),
        ({"data_path": "data/file.parquet"}, "data_path"),
        ({"data_path": "data/{nope}.parquet"}, "data_path"),
        ({"splits": {"train": "0:5"}}, "outside"),
        ({"splits": {"train": "five"}}, "start:stop"),
        ({"benchmark_task": ""}, "benchmark_task"),
    ],
)
def test_invalid_fields(change, message):
    with pytest.raises(DatasetError, match=message):
        _info(**change)


def test_invalid_features():
    feats = vlarm_features()
    bad = {**feats, "observation.state": {**feats["observation.state"], "shape": [6], "names": None}}
    with pytest.raises(DatasetError, match=r"observation.state must have shape \[7\]"):
        _info(features=bad)
    bad = {**feats, "action": {**feats["action"], "names": ["a", "b"]}}
    with pytest.raises(DatasetError, match="2 names for shape"):
        _info(features=bad)
    bad = {k: v for k, v in feats.items() if k != "observation.heightmap"}
    with pytest.raises(DatasetError, match="lack required keys"):
        _info(features=bad)
    bad = {**feats, "next.reward": {"dtype": "float16", "shape": [1], "names": None}}
    with pytest.raises(DatasetError, match="dtype"):
        _info(features=bad)
    bad = {
        **feats,
        "observation.heightmap": {**feats["observation.heightmap"], "shape": [10, 10], "names": None},
    }
    with pytest.raises(DatasetError, match="must equal"):
        _info(features=bad)


def test_all_problems_reported_together():
    with pytest.raises(DatasetError) as e:
        _info(fps=-1, split="x", total_tasks=-2)
    assert "fps" in str(e.value) and "split" in str(e.value) and "total_tasks" in str(e.value)


def test_from_json_errors_name_the_file(tmp_path):
    path = tmp_path / "info.json"
    with pytest.raises(DatasetError, match="info.json: missing"):
        DatasetInfo.from_json(path)
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        DatasetInfo.from_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="JSON object"):
        DatasetInfo.from_json(path)
    path.write_text(json.dumps({"fps": 1}))
    with pytest.raises(DatasetError, match=r"info.json: .*missing keys"):
        DatasetInfo.from_json(path)
