"""RT-1 training (shared checkpoints, resume, log) and closed-loop evaluation of its checkpoint."""

import csv

import numpy as np
import pytest
import torch

from vlarm.data.trajectories import Trajectories
from vlarm.eval.rollout import CheckpointAgentFactory, evaluate
from vlarm.policies.rt1.training import RT1TrainConfig, train_rt1

TINY = {"d_model": 16, "layers": 1, "heads": 2, "key_size": 8, "feed_forward": 16, "history": 2,
        "backbone_pretrained": False, "train_backbone": False}


def synthetic(episodes=2, length=4, size=(96, 128)):
    rng = np.random.default_rng(0)
    n = episodes * length
    actions = np.zeros((n, 6), np.float32)
    actions[:, :3] = rng.uniform(-0.03, 0.03, (n, 3))
    actions[length - 1 :: length, 5] = 1
    return Trajectories(rng.integers(0, 255, (n, *size, 3), dtype=np.uint8), actions,
                        ["put the red blocks in a green bowl"] * n, np.arange(0, n, length), np.full(episodes, length),
                        ["put-block-in-bowl-seen-colors"] * episodes, list(range(episodes)))


def config(out, **kw):
    return RT1TrainConfig(data_dirs=["unused"], steps=4, batch_size=2, save_every=2, log_every=2, out_dir=out,
                          policy_overrides=TINY, progress=False, **kw)


def test_train_resume_and_refuse_other_settings(tmp_path):
    data = synthetic()
    last = train_rt1(config(tmp_path / "run"), data)
    assert (last / "model.safetensors").is_file() and (tmp_path / "run/checkpoints/step_000002").is_dir()
    more = config(tmp_path / "run")
    more.steps = 6
    train_rt1(more, data)
    with (tmp_path / "run/train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert all(float(r["loss"]) > 0 and float(r["process_cpu_seconds"]) > 0 for r in rows)
    assert list(rows[0]) == ["step", "loss", "token_accuracy", "seconds", "process_cpu_seconds"]
    assert all(0.0 <= float(r["token_accuracy"]) <= 1.0 for r in rows)
    with pytest.raises(ValueError, match="other settings"):
        train_rt1(config(tmp_path / "run", lr=1e-3), data)
    # spelling out a default (state_token is off by default) is the same run; another value is not
    same = config(tmp_path / "run")
    same.steps, same.policy_overrides = 8, {**TINY, "state_token": False}
    train_rt1(same, data)
    other = config(tmp_path / "run")
    other.steps, other.policy_overrides = 10, {**TINY, "state_token": True}
    with pytest.raises(ValueError, match="state_token"):
        train_rt1(other, data)
    val = synthetic()
    val.split = "val"
    with pytest.raises(ValueError, match="train split"):
        train_rt1(config(tmp_path / "other"), val)


def test_checkpoint_evaluates_closed_loop_and_is_cut_at_the_step_limit(tmp_path):
    last = train_rt1(config(tmp_path / "run"), synthetic())
    factory = CheckpointAgentFactory(str(last))
    assert factory.env_options == {"action_mode": "ee_delta", "image_scale": 0.2, "renderer": "tiny"}
    results = evaluate(factory, "put-block-in-bowl-seen-colors", split="val", episodes=1, camera_scale=0.25,
                       progress=False, env_options={**factory.env_options, "max_control_steps": 3})
    assert results["episodes"] == 1 and results["mean_steps"] <= 3
    assert 0.0 <= results["score"] <= 100.0


def test_a_loaded_policy_names_its_env_options():
    from vlarm.eval.rollout import agent_env_options
    from vlarm.policies.rt1 import RT1Config, RT1Policy

    policy = RT1Policy(RT1Config(**TINY))
    assert agent_env_options(policy) == {"action_mode": "ee_delta", "image_scale": 0.2, "renderer": "tiny"}
    assert agent_env_options(object()) == {}


def test_the_policy_records_the_renderer_of_its_trajectories(tmp_path):
    from vlarm.policies import load_policy

    data = synthetic()
    data.renderer = "egl"
    last = train_rt1(config(tmp_path / "run"), data)
    assert load_policy(last).config.renderer == "egl"
    other = synthetic()
    with pytest.raises(ValueError, match="renderers"):
        Trajectories.concat([data, other])


def test_a_run_written_with_the_old_config_fields_resumes(tmp_path):
    import json

    data = synthetic()
    train_rt1(config(tmp_path / "run"), data)
    state = tmp_path / "run/checkpoints/last/training_state.json"
    saved = json.loads(state.read_text())
    saved["train_config"].update(normalization="none", color_permutation=0.0, cache_features=False)   # before RunConfig
    state.write_text(json.dumps(saved))
    more = config(tmp_path / "run")
    more.steps = 6
    train_rt1(more, data)
    assert (tmp_path / "run/checkpoints/step_000006").is_dir()


def test_rt1_training_takes_the_shared_run_settings():
    with pytest.raises(ValueError, match="threads >= 0"):
        config("unused", threads=-1)
    with pytest.raises(ValueError, match="trajectory dataset"):
        RT1TrainConfig(data_dirs=[])
    assert RT1TrainConfig(data_dirs=["d"]).device == "auto"


def test_a_log_written_under_the_old_columns_keeps_its_accuracy_on_resume(tmp_path):
    data = synthetic()
    train_rt1(config(tmp_path / "run"), data)
    log = tmp_path / "run/train_log.csv"
    log.write_text("step,loss,pick_loss,place_loss,seconds,process_cpu_seconds\n2,5.5,0.25,,1.0,2.0\n"
                   "4,5.4,0.5,,2.0,3.0\n")                           # as RT-1 runs wrote it before
    more = config(tmp_path / "run")
    more.steps = 6
    train_rt1(more, data)
    with log.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["token_accuracy"]) for r in rows[:2]] == [("2", "0.25"), ("4", "0.5")]
    assert [r["step"] for r in rows] == ["2", "4", "6"]


def test_frozen_blocks_train_from_cached_features_and_leave_the_frozen_part_alone(tmp_path):
    from vlarm.policies import load_policy
    from vlarm.policies.factory import make_policy
    from vlarm.policies.rt1.training import WindowSampler

    data = synthetic(episodes=3, length=5)
    overrides = {**TINY, "train_backbone": True, "token_stride": 16, "frozen_blocks": 8}
    cfg = config(tmp_path / "run")
    cfg.policy_overrides = overrides
    torch.manual_seed(cfg.seed)                         # as train_rt1 builds its policy
    policy = make_policy("rt1", **overrides)
    sampler = WindowSampler(data, policy)
    assert sampler.features.shape == (15, 80, 6, 8) and sampler.features.dtype == torch.float16
    batch = sampler.batch(np.random.default_rng(0), 3)
    assert "images" not in batch and batch["features"].shape == (3, 2, 80, 6, 8)
    sampler.features = None                             # the same draw, from the images
    plain = sampler.batch(np.random.default_rng(0), 3)
    policy.eval()
    with torch.no_grad():
        torch.testing.assert_close(policy(batch)[0], policy(plain)[0], rtol=1e-3, atol=1e-3)   # float16 cache
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    last = train_rt1(cfg, data)
    after = load_policy(last).state_dict()
    stem_and_frozen = ("image_encoder.backbone.net._conv_stem.", "image_encoder.backbone.net._blocks.0.",
                       "image_encoder.backbone.net._blocks.7.", "image_encoder.films.7.")
    trained = ("image_encoder.backbone.net._blocks.8.", "image_encoder.films.8.", "head.")
    frozen_keys = [k for k in before if k.startswith(tuple(f"net.{p}" for p in stem_and_frozen))]
    trained_keys = [k for k in before if k.startswith(tuple(f"net.{p}" for p in trained))]
    assert frozen_keys and trained_keys
    assert all(torch.equal(after[k], before[k]) for k in frozen_keys)
    assert any(not torch.equal(after[k], before[k]) for k in trained_keys)


def test_resuming_with_fewer_steps_than_done_says_nothing_is_trained(tmp_path, caplog):
    import logging

    data = synthetic()
    train_rt1(config(tmp_path / "run"), data)                 # 4 steps
    fewer = config(tmp_path / "run")
    fewer.steps = 2
    with caplog.at_level(logging.WARNING, logger="vlarm.policies.training"):
        last = train_rt1(fewer, data)
    assert last == tmp_path / "run/checkpoints/last"
    assert any("already at step 4 >= steps=2: nothing to train (pass a larger --steps" in r.getMessage()
               for r in caplog.records)
    cosine = config(tmp_path / "cosine", lr_schedule="cosine")
    train_rt1(cosine, data)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vlarm.policies.training"):
        train_rt1(config(tmp_path / "cosine", lr_schedule="cosine"), data)   # done: a longer run is another curve
    assert "cosine learning rate has decayed over its --steps; train longer under a new --out" in caplog.text


def test_rt1_training_follows_the_lr_schedule(tmp_path):
    import json

    run = config(tmp_path / "run", lr_schedule="cosine", warmup_steps=1)
    last = train_rt1(run, synthetic())
    groups = json.loads((last / "training_state.json").read_text())["param_groups"]
    assert groups and all(g["lr"] == pytest.approx(run.lr_at(3)) for g in groups)
    assert run.lr_at(3) < run.lr_at(1) == pytest.approx(run.lr)


def test_cached_frozen_features_use_each_frames_own_instruction():
    from vlarm.policies.factory import make_policy
    from vlarm.policies.rt1.training import WindowSampler

    data = synthetic(episodes=3, length=5)
    data.instructions = [f"put the {c} blocks in a green bowl" for c in ("red", "blue", "yellow") for _ in range(5)]
    policy = make_policy("rt1", **{**TINY, "token_stride": 16, "frozen_blocks": 8}).eval()
    torch.manual_seed(0)
    for film in policy.net.image_encoder.films[:8]:     # trained FiLM layers: the instruction changes the features
        for layer in (film.gamma, film.beta):
            torch.nn.init.normal_(layer.weight, std=0.05)
    sampler = WindowSampler(data, policy, chunk=4)      # chunks that cut across episodes
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).float()
    text = torch.stack([sampler.text[t] for t in data.instructions])
    with torch.no_grad():
        own = policy.net.image_encoder.frozen_features(images, text)
        first = policy.net.image_encoder.frozen_features(images, text[:1].expand_as(text))
    torch.testing.assert_close(sampler.features.float(), own, rtol=1e-2, atol=1e-2)
    assert not torch.allclose(own[5:], first[5:], atol=1e-2)   # the test can tell the instructions apart


def test_heldout_token_metrics_score_every_frame_once(tmp_path):
    from vlarm.policies.rt1.training import heldout_token_metrics

    data = synthetic(episodes=2, length=4)
    last = train_rt1(config(tmp_path / "run"), data)
    from vlarm.policies import load_policy

    policy = load_policy(last)
    policy.train()
    whole = heldout_token_metrics(policy, data, batch_size=8)
    assert policy.training                                   # the mode is restored
    split = heldout_token_metrics(policy, data, batch_size=3)   # batching does not change the result
    assert whole["frames"] == split["frames"] == 8
    assert whole["loss"] == pytest.approx(split["loss"], rel=1e-4) and 0 <= whole["token_accuracy"] <= 1
    assert len(whole["episode_loss"]) == 2 and np.mean(whole["episode_loss"]) == pytest.approx(whole["loss"])
    sampler_batch_loss = []
    with torch.no_grad():
        policy.eval()
        from vlarm.policies.rt1.training import WindowSampler

        sampler = WindowSampler(data, policy)
        for end in range(8):                                 # by hand: each frame as its window's last, alone
            batch = sampler.windows([end])
            batch["valid"] = torch.tensor([[False, True]])
            sampler_batch_loss.append(policy(batch)[1]["loss"])
    assert whole["loss"] == pytest.approx(float(np.mean(sampler_batch_loss)), rel=1e-4)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        heldout_token_metrics(policy, data, batch_size=0)
