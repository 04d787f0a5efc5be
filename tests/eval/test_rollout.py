import json

import pytest

from vlarm.eval import OracleAgent, evaluate
from vlarm.eval.rollout import EpisodeRecord, summarize
from vlarm.tasks.attributes import TRAIN_COLORS


def test_oracle_evaluation_writes_results_and_video(tmp_path):
    results = evaluate(OracleAgent, "put-block-in-bowl-unseen-colors", "test", 2, tmp_path, videos=1,
                       camera_scale=0.5, progress=False, label="oracle")
    assert results["score"] > 99 and results["success_rate"] == 100.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {"score", "success_rate", "per_episode"} <= set(saved)
    assert [r["seed"] for r in saved["per_episode"]] == [10001, 10003]
    md = (tmp_path / "results.md").read_text()
    assert "| 2 | pooled | 100.0 [100.0, 100.0] |" in md and "Cameras at 0.5 x 480x640." in md
    assert saved["score_ci"] == [100.0, 100.0] and saved["success_ci"][1] == pytest.approx(100.0)
    # every episode records its goal attributes and how many are novel (outside the training colours)
    for row in saved["per_episode"]:
        novel = [a["novel"] for a in row["goal_attributes"].values()]
        assert len(novel) == 2 and row["novelty"] == ("all" if all(novel) else "some" if any(novel) else "none")
        for a in row["goal_attributes"].values():
            assert a["novel"] == (a["value"] not in TRAIN_COLORS)
    assert sum(part["episodes"] for part in saved["by_novelty"].values()) == 2
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000


def test_summary_splits_episodes_by_novelty():
    records = [EpisodeRecord(seed=i, instruction="", total_reward=r, success=r > 0.99, novelty=n)
               for i, (r, n) in enumerate([(1.0, "all"), (0.0, "all"), (1.0, "none"), (0.5, "some")])]
    s = summarize(records)
    assert s["episodes"] == 4 and s["score"] == pytest.approx(62.5)
    assert s["by_novelty"]["all"]["episodes"] == 2 and s["by_novelty"]["all"]["score"] == pytest.approx(50.0)
    assert s["by_novelty"]["none"]["success_rate"] == 100.0 and s["by_novelty"]["some"]["success_rate"] == 0.0


def test_a_video_that_cannot_be_written_does_not_lose_the_episode(tmp_path, monkeypatch):
    from vlarm.sim import video

    def broken(self, path):
        raise video.VideoWriteError(f"could not write the video {path}: No space left on device")

    monkeypatch.setattr(video.VideoRecorder, "write", broken)
    results = evaluate(OracleAgent, "put-block-in-bowl-seen-colors", "val", 2, tmp_path, videos=1,
                       camera_scale=0.25, progress=False, label="oracle")
    first, second = results["per_episode"]
    assert results["episodes"] == 2 and first["success"] and first["video"] is None
    assert "No space left" in first["video_error"] and second["video_error"] is None


def test_more_val_episodes_than_the_split_has_fail_before_any_work():
    def factory(env):
        raise AssertionError("no agent may be built")

    with pytest.raises(ValueError, match="val split has 5000 episodes"):
        evaluate(factory, "put-block-in-bowl-seen-colors", "val", 6000, None, progress=False)


def test_each_step_records_the_instruction_it_acted_on():
    from vlarm.envs import make_env
    from vlarm.eval.rollout import OracleAgent, rollout

    env = make_env("stack-block-pyramid-seq-seen-colors", split="test", camera_scale=0.5, render_terminal=False)
    try:
        record = rollout(env, OracleAgent(env), 10001, "test")
    finally:
        env.close()
    steps = [s.instruction for s in record.steps]
    assert record.success and len(steps) == 6
    assert len(set(steps)) == 6 and all(s.startswith("put the ") for s in steps)   # one per pyramid step, in order
    assert steps[0].endswith("brown block") and " and " in steps[-1]                 # base row first, top last


def test_a_policy_is_evaluated_with_the_renderer_it_learned_from(monkeypatch, caplog):
    from vlarm.eval.rollout import policy_env_options
    from vlarm.policies.pick_place import PickPlaceConfig
    from vlarm.sim import cameras

    assert policy_env_options(PickPlaceConfig()) == {"renderer": "tiny"}     # old checkpoints: tiny
    assert policy_env_options({"type": "cliport"}) == {"renderer": "tiny"}    # config.json without the field
    monkeypatch.setattr(cameras, "egl_available", lambda: True)
    assert policy_env_options(PickPlaceConfig(renderer="egl")) == {"renderer": "egl"}
    monkeypatch.setattr(cameras, "egl_available", lambda: False)
    with caplog.at_level("WARNING"):
        assert policy_env_options({"renderer": "egl"}) == {"renderer": "tiny"}
    assert "EGL" in caplog.text
    with pytest.raises(ValueError, match="valid: tiny, egl"):
        PickPlaceConfig(renderer="opengl")


def test_training_records_how_the_datasets_images_were_rendered():
    from types import SimpleNamespace

    from vlarm.policies.training import trained_observation

    one = SimpleNamespace(dataset_info=SimpleNamespace(renderer="egl", camera_scale=0.5))
    assert trained_observation(one) == {"renderer": "egl", "camera_scale": 0.5}
    assert trained_observation(SimpleNamespace(datasets=[one, one])) == {"renderer": "egl", "camera_scale": 0.5}
    unrecorded = SimpleNamespace(dataset_info=SimpleNamespace(renderer=None, camera_scale=None))
    assert trained_observation(unrecorded) == {"renderer": "tiny", "camera_scale": None}
    assert trained_observation(object()) == {"renderer": "tiny", "camera_scale": None}    # synthetic data


def test_a_policy_is_rendered_at_the_camera_scale_it_learned_from_unless_told_otherwise(caplog):
    from vlarm.policies.base import env_options_at_scale, policy_env_options
    from vlarm.policies.pick_place import PickPlaceConfig

    options = policy_env_options(PickPlaceConfig(camera_scale=0.5))
    assert options == {"renderer": "tiny", "camera_scale": 0.5}
    with caplog.at_level("WARNING"):
        assert env_options_at_scale(options) == options                                  # its own
        assert env_options_at_scale(options, 0.5)["camera_scale"] == 0.5                 # the same, said aloud
        assert env_options_at_scale({"renderer": "tiny"})["camera_scale"] == 1.0  # unrecorded: 1.0
        assert env_options_at_scale({}, 0.25) == {"camera_scale": 0.25}                  # the oracle: anything
    assert not caplog.records
    with caplog.at_level("WARNING"):
        assert env_options_at_scale(options, 0.25)["camera_scale"] == 0.25               # allowed, a robustness test
    assert "learned from cameras at scale 0.5; rendering at --camera-scale 0.25" in caplog.text
    for bad in (0, -1.0, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="camera_scale must be a finite number > 0"):
            PickPlaceConfig(camera_scale=bad)


def test_evaluation_records_the_scale_it_rendered_at(caplog):
    from vlarm.eval.rollout import results_markdown
    from vlarm.policies import make_policy

    policy = make_policy("transporter", image_shape=(64, 32), widths=(4, 4, 4, 4), n_rotations=4, crop_size=16,
                         camera_scale=0.25).eval()
    own = evaluate(lambda env: policy, "put-block-in-bowl-seen-colors", "val", 1, progress=False)
    assert own["camera_scale"] == 0.25 and not caplog.records
    with caplog.at_level("WARNING"):
        other = evaluate(lambda env: policy, "put-block-in-bowl-seen-colors", "val", 1, camera_scale=0.3,
                         progress=False)
    assert other["camera_scale"] == 0.3 and "scale 0.25" in caplog.text
    assert own["policy_camera_scale"] == other["policy_camera_scale"] == 0.25
    assert results_markdown(own).count("Cameras at 0.25 x 480x640.") == 1
    assert "Cameras at 0.3 x 480x640 (the policy learned from 0.25: a robustness test)." in results_markdown(other)


@pytest.mark.parametrize("name", ["cliport-put-block-in-bowl", "cliport-saycan-skills",
                                  "cliport-vlm-put-block-in-bowl"])
def test_the_shipped_policies_record_the_scale_of_their_demonstrations(name):
    from pathlib import Path

    from vlarm.eval.rollout import CheckpointAgentFactory

    root = Path(__file__).resolve().parents[2] / "checkpoints" / name
    assert CheckpointAgentFactory(str(root)).env_options["camera_scale"] == 1.0   # collected at collect's default
