import numpy as np
import pytest

from vlarm.trust.robustness import (
    FAMILIES,
    apply_scene,
    check_level,
    curve,
    observe,
    perturb_observation,
    severity_label,
    task_for,
)


def test_levels_and_labels():
    assert set(FAMILIES) == {"unseen_attributes", "distractors", "table_texture", "lighting", "camera_jitter",
                             "depth_noise", "occlusion"}
    assert severity_label("camera_jitter", 2) == "1.0 cm / 1.0 deg" and severity_label("depth_noise", 3) == "10 mm"
    with pytest.raises(ValueError, match="valid: unseen_attributes"):
        check_level("fog", 0)
    with pytest.raises(ValueError, match="severities 0..3"):
        check_level("occlusion", 4)


def test_task_for_switches_colour_variants():
    assert task_for("put-block-in-bowl-seen-colors", "unseen_attributes", 1) == "put-block-in-bowl-unseen-colors"
    assert task_for("put-block-in-bowl-full", "unseen_attributes", 0) == "put-block-in-bowl-seen-colors"
    assert task_for("align-rope", "lighting", 2) == "align-rope"
    with pytest.raises(ValueError, match="colour variants"):
        task_for("align-rope", "unseen_attributes", 1)


def test_depth_noise_and_occlusion_act_on_copies():
    rng = np.random.default_rng(0)
    obs = {"colormap": np.zeros((320, 160, 3), np.uint8), "heightmap": np.full((320, 160), 0.1, np.float32),
           "instruction": "x"}
    noisy = perturb_observation(obs, "depth_noise", 3, rng)
    assert abs(float(np.std(noisy["heightmap"] - 0.1)) - 0.01) < 0.001 and obs["heightmap"].max() == np.float32(0.1)
    occluded = perturb_observation(obs, "occlusion", 2, rng)
    share = (occluded["colormap"].sum(-1) > 0).mean()
    assert 0.10 <= share < 0.30 and obs["colormap"].max() == 0
    assert perturb_observation(obs, "occlusion", 0, rng)["colormap"] is obs["colormap"]


def test_curve_relative_drop_by_hand():
    rows = curve("occlusion", {0: [1, 1, 1, 1], 2: [1, 1, 0, 0]}, kind="accuracy")
    assert [r["value"] for r in rows] == [100.0, 50.0]
    assert rows[0]["relative_drop"] == 0.0 and rows[1]["relative_drop"] == 50.0
    assert rows[1]["ci"][0] < 50 < rows[1]["ci"][1] and rows[1]["severity"] == "10 %"
    with pytest.raises(ValueError, match="kind"):
        curve("occlusion", {0: [1]}, kind="f1")


@pytest.fixture(scope="module")
def env():
    from vlarm.envs import make_env

    e = make_env("put-block-in-bowl-seen-colors", split="val", camera_scale=0.25)
    yield e
    e.close()


def test_scene_families_change_what_the_robot_sees(env):
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=1, options={"split": "val"})
    clean = observe(env, "lighting", 0, rng)
    n0 = len(env.scene.objects)
    apply_scene(env, "distractors", 1, rng, ("red", "green"))
    added = [o for o in list(env.scene.objects.values())[n0:]]
    assert len(added) == 2 and all(o.color not in ("red", "green") and o.kind == "block" for o in added)
    env.reset(seed=1, options={"split": "val"})
    apply_scene(env, "table_texture", 1, rng)
    grey = observe(env, "table_texture", 1, rng)
    assert grey["colormap"].mean() > clean["colormap"].mean() + 15   # the dark table turned light grey
    env.reset(seed=1, options={"split": "val"})
    dim = observe(env, "lighting", 3, rng)
    assert dim["colormap"].mean() < clean["colormap"].mean() - 5
    moved = observe(env, "camera_jitter", 3, rng)
    assert np.abs(moved["heightmap"] - clean["heightmap"]).max() > 0.01
