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
    from vlarm.policies.processing import NORMALIZATION_FIELDS, normalization_from_stats

    assert tuple(normalization_from_stats(stats)) == NORMALIZATION_FIELDS   # what --policy-option refuses to set


def test_normalization_refuses_unusable_stats():
    from vlarm.policies.processing import normalization_from_stats

    with pytest.raises(ValueError, match="no mean/std"):
        normalization_from_stats({})
    bad = {"observation.images.color": {"mean": [0.2] * 3, "std": [0.1, 0.0, 0.1]},
           "observation.heightmap": {"mean": [0.0], "std": [0.01]}}
    with pytest.raises(ValueError, match="std > 0"):
        normalization_from_stats(bad)


# ---------------------------------------------------------------------------- crash states (issue 7)
def _log_rows(run):
    """(header, rows) of a run's train_log.csv as raw CSV lists."""
    lines = list(csv.reader((run / "train_log.csv").open(newline="")))
    return lines[0], lines[1:]


def _write_log(run, lines):
    with (run / "train_log.csv").open("w", newline="") as f:
        csv.writer(f).writerows(lines)


def _state(directory):
    import json

    return json.loads((directory / "training_state.json").read_text())


def _assert_clean_log(run, steps):
    from vlarm.policies.training import LOG_HEADER

    header, rows = _log_rows(run)
    assert tuple(header) == LOG_HEADER
    assert [int(r[0]) for r in rows] == list(range(1, steps + 1))
    return rows


def _mark_row(run, step, loss="0.12345"):
    """Give the logged row of ``step`` a recognisable loss: it survives only if the rerun resumes past it."""
    header, rows = _log_rows(run)
    for r in rows:
        if int(r[0]) == step:
            r[1] = loss
    _write_log(run, [header, *rows])


def test_resume_restores_a_lost_header(tmp_path, fake_dataset):
    """Killed before the first flush of the log (log_every > save_every), the log is empty or header-less."""
    import dataclasses

    run = tmp_path / "run"
    train(_config(tmp_path, 2), dataset=fake_dataset)
    header, rows = _log_rows(run)
    _write_log(run, rows)  # header gone, rows 1-2 kept
    _mark_row(run, 2)
    train(_config(tmp_path, 4), dataset=fake_dataset)
    rows = _assert_clean_log(run, 4)
    assert rows[1][1] == "0.12345"
    # an empty log (nothing flushed at all) gets its header back too
    (run / "train_log.csv").write_text("")
    train(dataclasses.replace(_config(tmp_path, 6), log_every=2), dataset=fake_dataset)
    header, rows = _log_rows(run)
    assert header[0] == "step" and [int(r[0]) for r in rows] == [6]


def test_resume_drops_rows_logged_after_the_checkpoint(tmp_path, fake_dataset):
    run = tmp_path / "run"
    train(_config(tmp_path, 2), dataset=fake_dataset)
    header, rows = _log_rows(run)
    # a process killed after logging steps 3 (and a torn line of step 4) but before saving step 4
    _write_log(run, [header, *rows, ["3", "99.0", "99.0", "99.0", "1.0", "1.0"], ["4", "0.5"]])
    train(_config(tmp_path, 4), dataset=fake_dataset)
    rows = _assert_clean_log(run, 4)
    assert "99.0" not in rows[2]


def test_resume_keeps_cpu_seconds_cumulative(tmp_path, fake_dataset):
    import json

    run = tmp_path / "run"
    train(_config(tmp_path, 2), dataset=fake_dataset)
    for name in ("last", "step_000002"):
        path = run / "checkpoints" / name / "training_state.json"
        state = json.loads(path.read_text())
        assert 0 < state["process_cpu_seconds"] < 1000
        state["process_cpu_seconds"] = 1000.0  # as if the first process had run for 1000 CPU-seconds
        path.write_text(json.dumps(state))
    train(_config(tmp_path, 4), dataset=fake_dataset)
    rows = _assert_clean_log(run, 4)
    cpu = [float(r[5]) for r in rows]
    assert cpu[0] < 1000 <= cpu[2] <= cpu[3]
    assert _state(run / "checkpoints/last")["process_cpu_seconds"] >= 1000

    # a checkpoint from before the state recorded CPU time continues from the last logged value
    for name in ("last", "step_000004"):
        path = run / "checkpoints" / name / "training_state.json"
        state = json.loads(path.read_text())
        del state["process_cpu_seconds"]
        path.write_text(json.dumps(state))
    header, rows = _log_rows(run)
    rows[3][5] = "5000.0"
    _write_log(run, [header, *rows])
    train(_config(tmp_path, 6), dataset=fake_dataset)
    assert [float(r[5]) >= 5000 for r in _assert_clean_log(run, 6)[4:]] == [True, True]


def _run_to_4(tmp_path, fake_dataset):
    run = tmp_path / "run"
    train(_config(tmp_path, 4), dataset=fake_dataset)
    _mark_row(run, 4)
    return run, run / "checkpoints"


def _partial(directory, source):
    """A checkpoint directory killed mid-write: weights there, training state missing."""
    import shutil

    directory.mkdir()
    shutil.copy2(source / "config.json", directory / "config.json")
    shutil.copy2(source / "model.safetensors", directory / "model.safetensors")


def test_resume_from_last_tmp_when_last_is_missing(tmp_path, fake_dataset):
    import shutil

    run, ckpt = _run_to_4(tmp_path, fake_dataset)
    shutil.rmtree(ckpt / "step_000004")  # only last.tmp holds step 4
    (ckpt / "last").rename(ckpt / "last.tmp")
    last = train(_config(tmp_path, 6), dataset=fake_dataset)
    assert _assert_clean_log(run, 6)[3][1] == "0.12345"  # resumed at step 4, not from 0
    assert _state(last)["step"] == 6 and not (ckpt / "last.tmp").exists() and not (ckpt / "last.old").exists()


def test_resume_from_step_dir_when_last_and_last_tmp_are_broken(tmp_path, fake_dataset):
    run, ckpt = _run_to_4(tmp_path, fake_dataset)
    (ckpt / "last").rename(ckpt / "gone")
    _partial(ckpt / "last.tmp", ckpt / "gone")
    last = train(_config(tmp_path, 6), dataset=fake_dataset)
    assert _assert_clean_log(run, 6)[3][1] == "0.12345"
    assert _state(last)["step"] == 6 and _state(ckpt / "step_000006")["step"] == 6


def test_resume_skips_a_partial_newest_step_dir(tmp_path, fake_dataset):
    from vlarm.policies.training import find_resume_checkpoint

    run, ckpt = _run_to_4(tmp_path, fake_dataset)
    _partial(ckpt / "step_000006", ckpt / "last")
    (ckpt / "step_000008").mkdir()
    (ckpt / "step_000008" / "training_state.json").write_text('{"step": 8')  # torn JSON
    for name in ("config.json", "model.safetensors", "training_state.safetensors"):
        (ckpt / "step_000008" / name).write_bytes(b"")
    best, incomplete = find_resume_checkpoint(ckpt)
    assert best == ckpt / "last" and {p.name for p in incomplete} == {"step_000006", "step_000008"}
    header, rows = _log_rows(run)
    _write_log(run, [header, *rows, ["5", "99.0", "99.0", "99.0", "1.0", "1.0"]])
    last = train(_config(tmp_path, 6), dataset=fake_dataset)
    rows = _assert_clean_log(run, 6)
    assert rows[3][1] == "0.12345" and "99.0" not in rows[4]
    assert _state(ckpt / "step_000006")["step"] == 6 == _state(last)["step"]


def test_kill_during_the_swap_of_last_loses_nothing(tmp_path, fake_dataset, monkeypatch):
    """Interrupt the rename that puts last.tmp in place; the rerun continues from the step just saved."""
    import os

    from vlarm.policies import training

    run, ckpt = tmp_path / "run", tmp_path / "run/checkpoints"
    train(_config(tmp_path, 2), dataset=fake_dataset)
    real = os.replace

    def killed(src, dst):
        if str(src).endswith("last.tmp"):
            raise KeyboardInterrupt("killed")
        real(src, dst)

    monkeypatch.setattr(training.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tmp_path, 4), dataset=fake_dataset)
    monkeypatch.undo()
    assert not (ckpt / "last").exists() and _state(ckpt / "last.tmp")["step"] == 4
    assert _state(ckpt / "last.old")["step"] == 2
    _mark_row(run, 4)
    last = train(_config(tmp_path, 6), dataset=fake_dataset)
    assert _assert_clean_log(run, 6)[3][1] == "0.12345"
    assert _state(last)["step"] == 6
    assert sorted(p.name for p in ckpt.iterdir()) == ["last", "step_000002", "step_000004", "step_000006"]


def test_never_overwrites_a_run_with_checkpoints(tmp_path, fake_dataset):
    import dataclasses
    import shutil

    from vlarm.policies.base import CheckpointError

    run, ckpt = _run_to_4(tmp_path, fake_dataset)
    before = (run / "train_log.csv").read_text()
    with pytest.raises(ValueError, match="already holds a training run.*resume=True"):
        train(dataclasses.replace(_config(tmp_path, 6), resume=False), dataset=fake_dataset)
    # every checkpoint incomplete: refuse rather than restart from step 0 over the log
    for name in ("last", "step_000002", "step_000004"):
        (ckpt / name / "training_state.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no complete checkpoint.*last, step_000002, step_000004"):
        train(_config(tmp_path, 6), dataset=fake_dataset)
    assert (run / "train_log.csv").read_text() == before
    # a run killed in its very first save has only a .tmp: it starts again from step 0
    shutil.rmtree(ckpt)
    (ckpt / "step_000002.tmp").mkdir(parents=True)
    train(_config(tmp_path, 2), dataset=fake_dataset)
    _assert_clean_log(run, 2)


def test_color_permutation_hides_raw_colour_from_the_spatial_stream_only(fake_dataset):
    from vlarm.policies.training import FrameStore

    policy = make_policy("cliport", **tiny_overrides("cliport"))
    store = FrameStore(fake_dataset, policy)
    idx = np.arange(len(store))
    plain = store.batch(idx, np.random.default_rng(0), 0.0, 0.0, color_permutation=0.0)
    assert "semantic_colormap" not in plain
    permuted = store.batch(idx, np.random.default_rng(0), 0.0, 0.0, color_permutation=1.0)
    # same geometry (same rng draws for the SE(2) part), same true colours for the semantic stream
    assert torch.equal(permuted["semantic_colormap"], plain["colormap"])
    assert torch.equal(permuted["heightmap"], plain["heightmap"])
    for spatial, true in zip(permuted["colormap"], plain["colormap"], strict=True):
        assert not torch.equal(spatial, true)                       # a non-identity channel order every time
        assert sorted(spatial.reshape(-1, 3)[0].tolist()) == sorted(true.reshape(-1, 3)[0].tolist())
    # the backbone is fed the true colours: features equal those of the unpermuted batch
    store_nc = FrameStore(fake_dataset, policy, cache_features=False)
    b = store_nc.batch(idx, np.random.default_rng(1), 0.0, 0.0, color_permutation=1.0)
    feats = policy.prepare(b)["feats"]
    ref = policy.frozen_features(b["semantic_colormap"])
    assert all(torch.allclose(f, r) for f, r in zip(feats, ref, strict=True))
    with pytest.raises(ValueError, match="probability"):
        TrainConfig(color_permutation=1.5)


def test_divergence_stops_at_once_naming_the_step(tmp_path, fake_dataset):
    import dataclasses

    with pytest.raises(ValueError, match="must be finite"):
        dataclasses.replace(_config(tmp_path, 3), lr=float("inf"))
    cfg = dataclasses.replace(_config(tmp_path, 30), lr=1e30, save_every=30)
    with pytest.raises(ValueError, match=r"training diverged at step \d+: the loss is"):
        train(cfg, dataset=fake_dataset)
    assert not (tmp_path / "run" / "checkpoints").exists()                # nothing damaged was saved


def test_training_refuses_val_and_test_datasets(tmp_path, fake_dataset):
    from types import SimpleNamespace

    fake_dataset.dataset_info = SimpleNamespace(split="test")
    with pytest.raises(ValueError, match="test-split episodes; policies learn from train-split"):
        train(_config(tmp_path, 1), dataset=fake_dataset)


def test_the_lr_schedule_is_a_pure_function_of_the_step():
    from vlarm.policies.training import RunConfig

    constant = RunConfig(steps=10, lr=1e-3)
    assert [constant.lr_at(s) for s in (0, 5, 9, 20)] == [1e-3] * 4
    cosine = RunConfig(steps=10, lr=1e-3, lr_schedule="cosine")
    rates = [cosine.lr_at(s) for s in range(10)]
    assert rates[0] == pytest.approx(1e-3) and rates[5] == pytest.approx(5e-4)
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)) and 0 < rates[-1] < 1e-4
    assert cosine.lr_at(50) == rates[-1]          # past the end: the last step's rate, never negative
    warm = RunConfig(steps=10, lr=1e-3, lr_schedule="cosine", warmup_steps=4)
    assert [warm.lr_at(s) for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert warm.lr_at(4) == pytest.approx(1e-3) and warm.lr_at(7) == pytest.approx(5e-4)
    assert RunConfig(steps=10, lr=1e-3, warmup_steps=2).lr_at(5) == 1e-3   # warm-up, then constant
    with pytest.raises(ValueError, match="valid schedules: constant, cosine"):
        RunConfig(lr_schedule="linear")
    for bad in (-1, 10):
        with pytest.raises(ValueError, match=r"warmup_steps must be in \[0, steps=10\)"):
            RunConfig(steps=10, warmup_steps=bad)


def test_training_follows_the_schedule_and_a_cosine_run_resumes_only_on_its_own_curve(tmp_path, fake_dataset):
    import json

    last = train(_config(tmp_path, 4, lr_schedule="cosine"), dataset=fake_dataset)
    groups = json.loads((last / "training_state.json").read_text())["param_groups"]
    expected = _config(tmp_path, 4, lr_schedule="cosine").lr_at(3)
    assert groups and all(g["lr"] == pytest.approx(expected) for g in groups) and expected < 1e-3 / 2
    with pytest.raises(ValueError, match=r"steps: 4 in the run, 8 now\) \(a decaying learning rate is a curve"):
        train(_config(tmp_path, 8, lr_schedule="cosine"), dataset=fake_dataset)
    with pytest.raises(ValueError, match="lr_schedule: 'cosine' in the run, 'constant' now"):
        train(_config(tmp_path, 8), dataset=fake_dataset)
