import json

import pytest
import torch

from vlarm.vlm import CheckpointError, create_model_and_transforms, load_checkpoint, save_checkpoint


def _encode(model, tf, tok, toy_pairs):
    imgs, caps = toy_pairs(4)
    x = torch.stack([tf(i) for i in imgs])
    with torch.no_grad():
        return model.encode_image(x), model.encode_text(tok(caps))


def test_scratch_round_trip(tmp_path, scratch, toy_pairs):
    model, tf, tok = scratch
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
    save_checkpoint(model, tmp_path / "ck", extra={"note": "test"})
    loaded, tf2, tok2 = create_model_and_transforms(tmp_path / "ck")
    assert tf2 == tf and loaded.logit_scale.item() == 3.0
    for a, b in zip(_encode(model, tf, tok, toy_pairs), _encode(loaded, tf2, tok2, toy_pairs), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_lit_round_trip_leaves_out_locked_towers(tmp_path, lit, toy_pairs):
    model, tf, tok = lit
    save_checkpoint(model, tmp_path / "ck")
    size = (tmp_path / "ck" / "model.safetensors").stat().st_size
    assert size < 2_000_000  # heads only, not EfficientNet (13 MB) or MiniLM (90 MB)
    loaded = load_checkpoint(tmp_path / "ck")
    for a, b in zip(_encode(model, tf, tok, toy_pairs), _encode(loaded, tf, tok, toy_pairs), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        create_model_and_transforms(missing)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_checkpoint(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty"):
        create_model_and_transforms(tmp_path / "empty")


def test_corrupt_checkpoint_is_reported_not_unpickled(tmp_path, scratch):
    model, _, _ = scratch
    ck = save_checkpoint(model, tmp_path / "ck")
    weights = ck / "model.safetensors"
    weights.write_bytes(b"\x80\x04garbage that looks like a pickle")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(ck)
    save_checkpoint(model, ck)
    (ck / "vlm_config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="vlm_config.json"):
        load_checkpoint(ck)
    (ck / "vlm_config.json").write_text(
        json.dumps({"format": "vlarm-vlm", "config": {"arch": "scratch", "embed_dim": 7}, "excluded_prefixes": []})
    )
    with pytest.raises(CheckpointError, match="shape mismatch|do not match"):
        load_checkpoint(ck)
    (ck / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_checkpoint(ck)


def test_unknown_model_name_lists_builtins():
    with pytest.raises(FileNotFoundError, match="lit-effnet-minilm"):
        create_model_and_transforms("no-such-model")
