"""Issue 7: what fixes the look of an observation is recorded in meta/info.json, and `vlarm collect` refuses to
resume a dataset with other values (each crash/mix state is built by hand; no oracle episode is run)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vlarm.data import DatasetError, DatasetInfo, EpisodeDataset, EpisodeWriter, vlarm_features
from vlarm.data import collect as collect_module
from vlarm.data.collect import collect, observation_settings
from vlarm.data.info import INFO_PATH, collection_renderer
from vlarm.envs import make_env

from .conftest import TASK, make_episode

FULL = (320, 160)  # the env's heightmap / colour map size


def _settings(split="train", camera_scale=1.0, task=TASK):
    env = make_env(task, split=split, camera_scale=camera_scale)
    try:
        return observation_settings(env, split, camera_scale)
    finally:
        env.close()


def _dataset(root, settings=None, seeds=(0,), shape=FULL):
    """A dataset as `vlarm collect` writes it (settings recorded), or as older vlarm did (``settings=None``)."""
    if settings is None:
        writer = EpisodeWriter(root, TASK, "train", image_shape=shape, meta_interval_s=0)
    else:
        writer = _writer(root, settings, meta_interval_s=0)
    with writer:
        for seed in seeds:
            writer.add_episode(make_episode(seed, shape), seed=seed, total_reward=1.0)
    return root


def _info_json(root):
    return json.loads((root / INFO_PATH).read_text())


@pytest.fixture
def no_episodes(monkeypatch):
    """Fail the test if collect() gets as far as running an oracle episode."""
    def run(*args, **kwargs):
        raise AssertionError("collect ran an episode instead of refusing")

    monkeypatch.setattr(collect_module, "run_oracle_episode", run)


@pytest.fixture
def fake_episodes(monkeypatch):
    """Fast stand-in oracle: a successful synthetic episode per seed."""
    monkeypatch.setattr(collect_module, "run_oracle_episode", lambda env, seed, split: (make_episode(seed, FULL), 1.0))


def test_settings_describe_the_env():
    s = _settings(camera_scale=0.75)
    assert s["benchmark_task"] == TASK and s["split"] == "train" and s["image_shape"] == [320, 160]
    assert s["camera_scale"] == 0.75 and s["renderer"] == "tiny"
    assert set(s["cameras"]) == {"front", "left", "right"}
    assert s["cameras"]["front"]["image_size"] == [360, 480] and s["cameras"]["front"]["focal_length"] == 337.5


def test_info_records_the_settings_from_the_first_write(tmp_path):
    """Recorded when the writer opens, so a collection killed before its first meta rewrite can still be checked."""
    settings = _settings(camera_scale=0.5)
    writer = _writer(tmp_path / "ds", settings)
    try:
        info = _info_json(tmp_path / "ds")
        assert info["camera_scale"] == 0.5 and info["renderer"] == "tiny"
        assert info["cameras"] == settings["cameras"]
    finally:
        writer.close()
    ds = EpisodeDataset(_dataset(tmp_path / "ds", settings, seeds=(2,)))
    assert ds.dataset_info.camera_scale == 0.5 and ds.info["cameras"]["left"]["image_size"] == [240, 320]


def test_resume_with_another_camera_scale_is_refused(tmp_path, no_episodes):
    root = _dataset(tmp_path / "x", _settings(camera_scale=1.0))
    before = (root / INFO_PATH).read_text()
    expected = (f"{root} was collected with camera_scale 1.0; this run asks for 0.75: pass the same --camera-scale "
                "to resume or a new --out")
    with pytest.raises(DatasetError) as err:
        collect(TASK, "train", 2, root, camera_scale=0.75, progress=False)
    assert str(err.value) == expected
    assert (root / INFO_PATH).read_text() == before  # refused before anything was rewritten
    assert EpisodeDataset(root).num_episodes == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "val"}, "collected with split 'train'; this run asks for 'val': pass the same --split to resume"),
        ({"task": "put-block-in-bowl-unseen-colors"},
         f"collected with benchmark_task '{TASK}'; this run asks for 'put-block-in-bowl-unseen-colors': pass the "
         "same --task to resume"),
        ({"split": "val", "camera_scale": 0.5},
         "collected with split 'train' and camera_scale 1.0; this run asks for 'val' and 0.5: pass the same --split "
         "and --camera-scale to resume or a new --out"),
    ],
)
def test_resume_with_another_task_or_split_is_refused(tmp_path, no_episodes, change, message):
    root = _dataset(tmp_path / "x", _settings())
    kwargs = {"task": TASK, "split": "train", "camera_scale": 1.0} | change
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        collect(kwargs["task"], kwargs["split"], 2, root, camera_scale=kwargs["camera_scale"], progress=False)


def _edit_info(root, **changes):
    info = _info_json(root)
    for key, value in changes.items():
        info[key] = value
    (root / INFO_PATH).write_text(json.dumps(info))


def test_resume_with_another_renderer_or_camera_is_refused(tmp_path, no_episodes):
    root = _dataset(tmp_path / "x", _settings())
    _edit_info(root, renderer="egl")
    with pytest.raises(DatasetError, match="collected with renderer 'egl'; this run asks for 'tiny': pass the same "
                                           "--renderer to resume or a new --out"):
        collect(TASK, "train", 2, root, renderer="tiny", progress=False)
    assert collection_renderer("auto", root) == "egl"             # the default resumes with the recorded one
    assert collection_renderer("tiny", root) == "tiny"
    assert collection_renderer("auto", tmp_path / "fresh") == "auto"

    _edit_info(root, renderer="tiny")
    cameras = _info_json(root)["cameras"]
    cameras["left"]["z_range"] = [0.05, 10.0]
    _edit_info(root, cameras=cameras)
    with pytest.raises(DatasetError, match=r"camera 'left' z_range \[0.05, 10.0\]; this run asks for \[0.01, 10.0\]"):
        collect(TASK, "train", 2, root, progress=False)


def test_resume_with_another_image_size_is_refused(tmp_path, no_episodes):
    small = dict(_settings(), image_shape=[32, 16])
    root = _dataset(tmp_path / "x", small, shape=(32, 16))
    with pytest.raises(DatasetError, match=r"collected with image_shape \[32, 16\]; this run asks for \[320, 160\]"):
        collect(TASK, "train", 2, root, progress=False)


def test_old_dataset_still_loads_but_cannot_be_resumed(tmp_path, no_episodes):
    root = _dataset(tmp_path / "old", None)
    info = _info_json(root)
    assert not {"camera_scale", "renderer", "cameras"} & set(info)  # as written before this change
    ds = EpisodeDataset(root)
    assert ds.num_episodes == 1 and ds.dataset_info.camera_scale is None and ds[0]["colormap"].shape == (*FULL, 3)
    with pytest.raises(DatasetError, match="collected before vlarm recorded camera_scale, renderer, cameras in "
                                           "meta/info.json.*cannot verify.*pass a new --out"):
        collect(TASK, "train", 2, root, progress=False)
    assert _info_json(root) == info


def test_unverifiable_resume_is_refused(tmp_path, no_episodes):
    root = _dataset(tmp_path / "x", _settings())
    (root / INFO_PATH).write_text("{not json")
    with pytest.raises(DatasetError, match="holds episodes but meta/info.json cannot be read.*restore the file, or "
                                           "pass a new --out"):
        collect(TASK, "train", 2, root, progress=False)
    (root / INFO_PATH).unlink()
    with pytest.raises(DatasetError, match="cannot be read"):
        collect(TASK, "train", 2, root, progress=False)


def test_same_settings_resume_and_an_empty_root_takes_any(tmp_path, fake_episodes):
    root = _dataset(tmp_path / "x", _settings(camera_scale=0.5))
    report = collect(TASK, "train", 2, root, camera_scale=0.5, progress=False)
    assert report.new_episodes == 1 and EpisodeDataset(root).num_episodes == 2
    assert _info_json(root)["camera_scale"] == 0.5

    # a root opened but never given an episode holds nothing to mix: it takes this run's settings
    EpisodeWriter(tmp_path / "empty", TASK, "train", image_shape=FULL).close()
    collect(TASK, "train", 1, tmp_path / "empty", camera_scale=0.25, progress=False)
    assert _info_json(tmp_path / "empty")["camera_scale"] == 0.25


def _info(**kw):
    args = {"fps": 1, "features": vlarm_features(), "benchmark_task": TASK, "split": "train"} | kw
    return DatasetInfo(**args)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"camera_scale": 0.0}, "camera_scale must be a finite number > 0"),
        ({"camera_scale": -1}, "camera_scale must be a finite number > 0"),
        ({"camera_scale": math.nan}, "camera_scale must be a finite number > 0"),
        ({"camera_scale": "1.0"}, "camera_scale must be a finite number > 0"),
        ({"renderer": ""}, "renderer must be a non-empty string"),
        ({"cameras": {}}, "cameras must be a non-empty mapping"),
        ({"cameras": {"front": {"image_size": [1, 2]}}}, r"cameras\['front'\] lacks \['focal_length'"),
        ({"cameras": {"front": {"image_size": [0, 2], "focal_length": 1.0, "position": [0, 0, 0],
                                "rotation": [0, 0, 0], "z_range": [0.1, 1]}}}, r"cameras\['front'\].image_size"),
    ],
)
def test_info_validates_the_settings(change, message):
    with pytest.raises(DatasetError, match=message):
        _info(**change)


def test_info_differences():
    info = _info(camera_scale=1.0, renderer="tiny", cameras={"front": {"image_size": [4, 4], "focal_length": 1.0,
                                                                       "position": [0, 0, 0], "rotation": [0, 0, 0],
                                                                       "z_range": [0.1, 1]}})
    assert info.observation_differences({"camera_scale": 1, "image_shape": (320, 160), "split": "train"}) == []
    assert info.observation_differences({"camera_scale": 0.5}) == [("camera_scale", 1.0, 0.5)]
    assert _info().observation_differences({"renderer": "tiny"}) == [("renderer", None, "tiny")]
    with pytest.raises(KeyError, match="unknown observation settings"):
        info.observation_differences({"fps": 1})
    assert np.isclose(DatasetInfo.from_dict(info.to_dict()).camera_scale, 1.0)


def _writer(root, settings, **kwargs):
    shape = tuple(settings["image_shape"])
    return EpisodeWriter(root, settings["benchmark_task"], settings["split"], image_shape=shape, observation=settings,
                         **kwargs)
