"""Tests of the training loop: learning on a synthetic frame, logs, checkpoints and resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlarm.policies import load_policy, make_policy
from vlarm.policies.processing import frame_to_labels
from vlarm.policies.training import TrainConfig, train

from .conftest import TINY_SHAPE, make_frame, tiny_overrides


def test_loss_falls_on_one_frame():
    torch.manual_seed(0)
    policy = make_policy("cliport", **tiny_overrides("cliport"))
    frame = make_frame()
    lab = frame_to_labels(frame, TINY_SHAPE)
    batch = {
        "colormap": torch.from_numpy(frame["colormap"])[None],
        "heightmap": torch.from_numpy(frame["heightmap"])[None],
        "pick_pixel": torch.from_numpy(lab["pick_pixel"])[None],
        "place_pixel": torch.from_numpy(lab["place_pixel"])[None],
        "place_rotation": torch.tensor([lab["place_rotation"]], dtype=torch.float32),
        "instruction": [frame["instruction"]],
    }
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    action = policy.select_action(frame, return_info=True)["info"]
    assert np.abs(np.array(action["pick_pixel"]) - lab["pick_pixel"]).max() <= 2


def _config(tmp_path, steps, **kw):
    return TrainConfig(
        policy="cliport",
        steps=steps,
        batch_size=2,
        lr=1e-3,
        out_dir=tmp_path / "run",
        save_every=2,
        log_every=1,
        seed=0,
        progress=False,
        threads=1,
        policy_overrides=tiny_overrides("cliport"),
        **kw,
    )


def test_train_resume_continues(tmp_path, fake_dataset):
    last = train(_config(tmp_path, 4), dataset=fake_dataset)
    assert (last / "model.safetensors").is_file() and (tmp_path / "run/checkpoints/step_000004").is_dir()
    assert "optimizer.0.exp_avg" in load_file(str(last / "training_state.safetensors"))
    last = train(_config(tmp_path, 8), dataset=fake_dataset)
    rows = list(csv.DictReader((tmp_path / "run/train_log.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    assert set(rows[0]) == {"step", "loss", "pick_loss", "place_loss", "seconds", "process_cpu_seconds"}
    assert float(rows[-1]["seconds"]) >= float(rows[3]["seconds"])
    policy = load_policy(last)
    assert policy.name == "cliport"

    # An uninterrupted 8-step run with the same seed reaches the same weights.
    train(_config(tmp_path / "b", 8), dataset=fake_dataset)
    a = load_file(str(last / "model.safetensors"))
    b = load_file(str(tmp_path / "b/run/checkpoints/last/model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_train_selects_demos(tmp_path, fake_dataset):
    last = train(_config(tmp_path, 1, demos=1, augment=False), dataset=fake_dataset)
    assert last.is_dir()


def test_frame_store_caches_and_warps_grounding_maps(fake_dataset, lit_checkpoint):
    from vlarm.policies.training import FrameStore

    policy = make_policy("cliport", **{**tiny_overrides("cliport"), "grounding_model": str(lit_checkpoint)})
    store = FrameStore(fake_dataset, policy)
    assert store.grounding.shape == (len(fake_dataset), 2, *TINY_SHAPE)
    plain = store.batch(np.array([0]), None, 0.0, 0.0)
    torch.testing.assert_close(plain["grounding_maps"], store.grounding[[0]].float())
    shifted = store.batch(np.array([0]), np.random.default_rng(0), 0.5, 4.0)
    assert shifted["grounding_maps"].shape == (1, 2, *TINY_SHAPE)
    # The cached maps move with the image: relevance stays on the (moved) block under the pick label.
    r, c = shifted["pick_pixel"][0].tolist()
    assert shifted["grounding_maps"][0, 0, r, c] > 0.5 and shifted["heightmap"][0, r, c] > 0.01
    loss, _ = policy(shifted)
    assert torch.isfinite(loss)


def test_train_transporter_with_feature_cache(tmp_path, fake_dataset):
    """The training loop's caching hooks (frozen features, grounding maps) are optional for a policy."""
    cfg = _config(tmp_path, 2)
    cfg.policy, cfg.policy_overrides = "transporter", tiny_overrides("transporter")
    last = train(cfg, dataset=fake_dataset)
    assert load_policy(last).name == "transporter"


def test_resume_refuses_a_run_with_other_settings(tmp_path, fake_dataset):
    import dataclasses

    import pytest

    train(_config(tmp_path, 2), dataset=fake_dataset)
    other = dataclasses.replace(_config(tmp_path, 4), lr=5e-4)
    with pytest.raises(ValueError, match="lr: 0.001 in the run, 0.0005 now"):
        train(other, dataset=fake_dataset)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        _config(tmp_path, 0)


def test_new_policy_normalises_with_the_datasets_own_stats(tmp_path, fake_dataset):
    """Issue 7 item 7: the input statistics come from the training data (meta/stats.json), saved in the config."""
    from vlarm.policies import load_policy
    from vlarm.policies.processing import COLOR_MEAN, make_network_input

    last = train(_config(tmp_path, 1), dataset=fake_dataset)
    cfg = load_policy(last).config
    stats = fake_dataset.stats
    assert cfg.color_mean == pytest.approx(np.ravel(stats["observation.images.color"]["mean"]).tolist())
    assert cfg.depth_std == pytest.approx(stats["observation.heightmap"]["std"][0])
    assert cfg.color_mean[0] != pytest.approx(COLOR_MEAN)
    frames = torch.from_numpy(np.stack([f["colormap"] for f in fake_dataset.frames]))
    heights = torch.from_numpy(np.stack([f["heightmap"] for f in fake_dataset.frames]))
    image = make_network_input(frames, heights, cfg.color_mean, cfg.color_std, cfg.depth_mean, cfg.depth_std)
    # normalised with its own statistics, the training data has zero mean and unit std per channel
    assert image.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert image.std(dim=(0, 2, 3), unbiased=False) == pytest.approx([1.0] * 6, abs=1e-3)
    ravens = load_policy(train(_config(tmp_path / "r", 1, normalization="ravens"), dataset=fake_dataset)).config
    assert ravens.color_mean == (COLOR_MEAN,) * 3


def test_normalization_refuses_unusable_stats():
    from vlarm.policies.processing import normalization_from_stats

    with pytest.raises(ValueError, match="no mean/std"):
        normalization_from_stats({})
    bad = {"observation.images.color": {"mean": [0.2] * 3, "std": [0.1, 0.0, 0.1]},
           "observation.heightmap": {"mean": [0.0], "std": [0.01]}}
    with pytest.raises(ValueError, match="std > 0"):
        normalization_from_stats(bad)
