"""--device plumbing (issue 10), tested on the CPU."""

import pytest
import torch

from vlarm.policies import load_policy, make_policy, resolve_device
from vlarm.policies.base import batch_to
from vlarm.policies.training import TrainConfig, train

from .conftest import make_frame, tiny_overrides


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="valid: auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_batch_to_moves_tensors_and_tensor_lists_only():
    batch = {"a": torch.ones(2), "b": [torch.zeros(1)], "c": ["text"], "d": 3}
    moved = batch_to(batch, torch.device("cpu"))
    assert torch.equal(moved["a"], batch["a"]) and moved["c"] == ["text"] and moved["d"] == 3


def test_training_and_acting_on_an_explicit_device(tmp_path, fake_dataset):
    cfg = TrainConfig(policy="cliport", steps=2, batch_size=2, out_dir=tmp_path / "run", save_every=2, log_every=1,
                      progress=False, threads=1, device="cpu", policy_overrides=tiny_overrides("cliport"))
    policy = load_policy(train(cfg, dataset=fake_dataset)).to(resolve_device("auto"))
    assert policy.device == resolve_device("auto")
    action = policy.select_action(make_frame())
    assert action["pick_pose"].shape == (7,) and action["pick_pose"].dtype.name == "float32"
    assert make_policy("transporter", **tiny_overrides("transporter")).device == torch.device("cpu")
