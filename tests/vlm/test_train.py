import copy
import math

import pytest
import torch

from vlarm.vlm.data import ArrayImageCaptionDataset
from vlarm.vlm.train import TrainConfig, cosine_with_warmup, latest_checkpoint, train


def test_schedule_warmup_then_cosine():
    assert cosine_with_warmup(0, 4, 20) == pytest.approx(0.25)
    assert cosine_with_warmup(3, 4, 20) == pytest.approx(1.0)
    assert cosine_with_warmup(4, 4, 20) == pytest.approx(1.0)
    assert cosine_with_warmup(12, 4, 20) == pytest.approx(0.5)
    assert cosine_with_warmup(20, 4, 20) == pytest.approx(0.0, abs=1e-12)


def test_scratch_model_trains_one_epoch_and_checkpoints(tmp_path, scratch, toy_pairs):
    model, tf, tok = scratch
    ds = ArrayImageCaptionDataset(*toy_pairs(16))
    res = train(
        model,
        tok,
        tf,
        ds,
        TrainConfig(epochs=3, batch_size=8, lr=1e-3, warmup_steps=1, progress=False),
        output_dir=tmp_path,
    )
    assert res.steps == 6 and res.cache_seconds == 0.0  # nothing locked, nothing cached
    assert all(math.isfinite(v) for v in res.losses)
    assert (tmp_path / "checkpoints" / "step-6" / "model.safetensors").is_file()
    assert latest_checkpoint(tmp_path).name == "step-6"
    assert model.logit_multiplier <= 100.0


def test_cached_and_uncached_training_agree(lit, toy_pairs):
    """Caching locked-tower outputs is an optimisation only: same first-step loss, lower loss after
    training."""
    _, tf, tok = lit
    ds = ArrayImageCaptionDataset(*toy_pairs(16))
    runs = []
    for cache in (True, False):
        model = copy.deepcopy(lit[0])
        cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, warmup_steps=1, cache_features=cache, progress=False)
        runs.append(train(model, tok, tf, ds, cfg))
    assert runs[0].cache_seconds > 0 and runs[1].cache_seconds == 0
    assert runs[0].losses[0] == pytest.approx(runs[1].losses[0], rel=1e-4)
    assert runs[0].losses == pytest.approx(runs[1].losses, rel=1e-3)


def test_resume_reproduces_uninterrupted_run(tmp_path, lit, toy_pairs):
    _, tf, tok = lit
    ds = ArrayImageCaptionDataset(*toy_pairs(24))
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, warmup_steps=2, checkpoint_every=4, progress=False)
    full = copy.deepcopy(lit[0])
    ref = train(full, tok, tf, ds, cfg, output_dir=tmp_path / "run")
    assert latest_checkpoint(tmp_path / "run").name == "step-9"
    # An interrupted run resumes from its step-4 checkpoint: same batches, schedule and optimiser state.
    resumed = copy.deepcopy(lit[0])
    res = train(
        resumed,
        tok,
        tf,
        ds,
        cfg,
        output_dir=tmp_path / "resumed",
        resume=tmp_path / "run" / "checkpoints" / "step-4",
    )
    assert res.steps == ref.steps == 9 and len(res.losses) == 5
    assert res.losses == pytest.approx(ref.losses[4:], rel=1e-4)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), k


def test_resume_without_checkpoint_fails_clearly(tmp_path, scratch, toy_pairs):
    model, tf, tok = scratch
    ds = ArrayImageCaptionDataset(*toy_pairs(4))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        train(model, tok, tf, ds, TrainConfig(epochs=1, progress=False), output_dir=tmp_path, resume=True)
