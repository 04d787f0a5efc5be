"""Weight files prove they are intact (issue 7 item 4): digest on save, verified on load, NaN/inf refused."""

import logging
import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from vlarm.policies import load_policy, make_policy
from vlarm.policies.base import CheckpointError
from vlarm.weights import DIGEST_KEY, WeightsError, load_weights, save_weights, tensors_digest


def _flip_middle(path, n=8):
    """Overwrite ``n`` bytes in the middle of the tensor data (the header stays valid)."""
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    mid = header + (len(data) - header) // 2
    data[mid:mid + n] = bytes((b + 1) % 256 for b in data[mid:mid + n])
    path.write_bytes(bytes(data))


def test_round_trip_metadata_and_digest(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.zeros(0)}
    path = save_weights(tensors, tmp_path / "w.safetensors", {"type": "x"})
    loaded, meta = load_weights(path)
    assert meta["format"] == "pt" and meta["type"] == "x" and meta[DIGEST_KEY] == tensors_digest(tensors)
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    assert not (tmp_path / "w.safetensors.tmp").exists()


def test_digest_sees_names_dtypes_and_shapes():
    t = torch.arange(6, dtype=torch.float32)
    base = tensors_digest({"a": t})
    assert tensors_digest({"b": t}) != base
    assert tensors_digest({"a": t.double()}) != base
    assert tensors_digest({"a": t.reshape(2, 3)}) != base


def test_policy_with_8_bytes_overwritten_is_refused(tmp_path):
    """The failing input of the issue: `vlarm eval` ran with silently damaged weights."""
    policy = make_policy("transporter", widths=(4, 8, 8, 8), transport_dim=4, n_rotations=8)
    ckpt = policy.save_pretrained(tmp_path / "p")
    load_policy(ckpt)
    _flip_middle(ckpt / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: weights digest mismatch"):
        load_policy(ckpt)


def test_vlm_checkpoint_damage_is_refused(tmp_path):
    from vlarm.vlm import create_model_and_transforms, load_checkpoint, save_checkpoint
    from vlarm.vlm.checkpoint import CheckpointError as VLMCheckpointError

    model, _, _ = create_model_and_transforms("scratch-vit-tiny", image_size=32, embed_dim=16)
    d = save_checkpoint(model, tmp_path / "vlm")
    load_checkpoint(d)
    _flip_middle(d / "model.safetensors")
    with pytest.raises(VLMCheckpointError, match="digest mismatch"):
        load_checkpoint(d)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_with_or_without_a_digest(tmp_path, bad, caplog):
    w = torch.ones(4)
    w[2] = bad
    with pytest.raises(WeightsError, match="NaN or inf"):
        save_weights({"w": w}, tmp_path / "new.safetensors")
    assert not (tmp_path / "new.safetensors").exists()
    save_file({"w": w}, str(tmp_path / "old.safetensors"))              # a file from another writer, no digest
    with pytest.raises(WeightsError, match="'w' holds NaN or inf"):
        load_weights(tmp_path / "old.safetensors")


def test_legacy_file_without_digest_loads_with_a_warning(tmp_path, caplog):
    save_file({"w": torch.ones(2)}, str(tmp_path / "old.safetensors"))
    with caplog.at_level(logging.WARNING):
        tensors, _ = load_weights(tmp_path / "old.safetensors")
    assert torch.equal(tensors["w"], torch.ones(2)) and "without a weights digest" in caplog.text


def test_truncated_and_missing_files(tmp_path):
    path = save_weights({"w": torch.ones(100)}, tmp_path / "w.safetensors")
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(WeightsError, match="unreadable safetensors"):
        load_weights(path)
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "none.safetensors")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_weight_files_get_the_umask_mode_like_any_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = save_weights({"a": torch.zeros(2)}, tmp_path / "w.safetensors")
        (tmp_path / "c.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o666 & ~umask
