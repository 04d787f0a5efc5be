"""ee_delta expert trajectories on disk (vlarm.data.trajectories): layout, terminate frame, resume, refusals."""

import json

import numpy as np
import pytest

from vlarm.data.errors import DatasetError
from vlarm.data.trajectories import (
    Trajectories,
    collect_trajectories,
    ee_action_dict,
    ee_action_vector,
    perturb,
    run_ee_oracle_episode,
)
from vlarm.envs import make_env

TASK = "put-block-in-bowl-seen-colors"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("traj") / "ds"
    report = collect_trajectories(TASK, "train", 1, root, camera_scale=0.25, progress=False)
    return root, report


def test_layout_and_contents(dataset):
    root, report = dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["fps"] == 10 and info["action_mode"] == "ee_delta" and info["codebase_version"] == "v3.0"
    assert info["features"]["action"]["shape"] == [6] and info["total_episodes"] == 1
    data = Trajectories.open(root)
    assert data.images.shape == (report["frames"], 96, 128, 3) and data.images.dtype == np.uint8
    assert data.actions.shape == (report["frames"], 6)
    assert data.actions[-1, 5] == 1 and not data.actions[:-1, 5].any()     # only the last frame terminates
    assert np.abs(data.actions[:, :3]).max() <= 0.03 + 1e-6
    assert data.actions[:, 4].any()                                        # suction was used
    assert data.states.shape == (report["frames"], 8) and info["expert_noise"] == 0.0
    assert data.states[0, 7] == 0 and data.states[:, 7].any()            # holding flag: not at first, then yes


def test_resume_keeps_episodes_and_refuses_other_settings(dataset):
    root, _ = dataset
    again = collect_trajectories(TASK, "train", 1, root, camera_scale=0.25, progress=False)
    assert again["tried"] == 0 and again["episodes"] == 1
    with pytest.raises(DatasetError, match="other settings"):
        collect_trajectories(TASK, "train", 1, root, camera_scale=0.25, image_scale=0.25, progress=False)
    with pytest.raises(DatasetError, match="expert_noise"):
        collect_trajectories(TASK, "train", 1, root, camera_scale=0.25, expert_noise=0.01, progress=False)
    for bad in (-0.01, float("nan")):
        with pytest.raises(ValueError, match="expert_noise"):
            collect_trajectories(TASK, "train", 1, root, camera_scale=0.25, expert_noise=bad, progress=False)


def test_dart_noise_moves_the_arm_off_the_clean_path_and_the_expert_still_solves_it():
    env = make_env(TASK, action_mode="ee_delta", camera_scale=0.25)
    try:
        clean, clean_total = run_ee_oracle_episode(env, 0, "train")
        noisy, noisy_total = run_ee_oracle_episode(env, 0, "train", expert_noise=0.01)
        again, _ = run_ee_oracle_episode(env, 0, "train", expert_noise=0.01)
    finally:
        env.close()
    assert clean_total > 0.99 and noisy_total > 0.99                     # the expert corrects the perturbations
    tips = lambda frames: np.stack([f["state"][:3] for f in frames])      # noqa: E731
    n = min(len(clean), len(noisy))
    assert np.abs(tips(clean)[:n] - tips(noisy)[:n]).max() > 0.005       # it visited states the clean run did not
    np.testing.assert_array_equal(tips(noisy), tips(again))               # seeded by the episode seed
    labels = np.stack([f["action"] for f in noisy])
    assert np.abs(labels[:, :3]).max() <= 0.03 + 1e-6                     # labels are commands within the limits


def test_perturb_changes_only_the_translation_and_stays_in_the_action_space():
    action = {"translation": np.array([0.03, -0.03, 0.0], np.float32), "yaw": np.array([0.2], np.float32),
              "suction": 1, "terminate": 0}
    out = perturb(action, 0.05, np.random.default_rng(0))
    assert np.abs(out["translation"]).max() <= 0.03 and not np.allclose(out["translation"], action["translation"])
    assert out["yaw"] is action["yaw"] and out["suction"] == 1 and out["terminate"] == 0
    small = {**action, "translation": np.array([0.0003, 0.0, 0.0], np.float32)}     # 1% of a full step
    spread = np.std([perturb(small, 0.01, np.random.default_rng(i))["translation"][1] for i in range(200)])
    assert 0.00005 < spread < 0.0002                                          # ~1% of the full-step noise


def test_pick_place_dataset_is_refused(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text(json.dumps({"codebase_version": "v3.0", "fps": 10}))
    with pytest.raises(DatasetError, match="never mixed"):
        Trajectories.open(tmp_path)


def test_window_pads_the_episode_start_with_its_first_frame(dataset):
    data = Trajectories.open(dataset[0])
    idx, valid = data.window(2, 6)
    assert idx.tolist() == [0, 0, 0, 0, 1, 2] and valid.tolist() == [False] * 3 + [True] * 3
    idx, valid = data.window(10, 6)
    assert idx.tolist() == list(range(5, 11)) and valid.all()


def test_action_vector_round_trip():
    action = {"translation": np.array([0.01, 0.0, -0.02], np.float32), "yaw": np.array([0.1], np.float32),
              "suction": 1, "terminate": 0}
    back = ee_action_dict(ee_action_vector(action))
    np.testing.assert_array_equal(back["translation"], action["translation"])
    assert back["suction"] == 1 and back["terminate"] == 0


def test_the_two_action_modes_refuse_each_others_datasets_with_what_to_do(dataset, tmp_path):
    from vlarm.data.info import DatasetInfo

    root, _ = dataset
    with pytest.raises(DatasetError, match="'ee_delta' trajectories .*for --policy rt1"):
        DatasetInfo.from_json(root / "meta/info.json")            # what CLIPort/Transporter training opens
    from vlarm.data.collect import collect

    with pytest.raises(DatasetError, match="^[^(]*holds 'ee_delta' trajectories"):   # not wrapped as "unreadable"
        collect(TASK, "train", 1, root, camera_scale=0.25, progress=False)
    pick_place = tmp_path / "pp"
    (pick_place / "meta").mkdir(parents=True)
    (pick_place / "meta/info.json").write_text(json.dumps({"codebase_version": "v3.0", "fps": 10}))
    with pytest.raises(DatasetError, match="holds pick-and-place demonstrations"):
        collect_trajectories(TASK, "train", 1, pick_place, camera_scale=0.25, progress=False)
