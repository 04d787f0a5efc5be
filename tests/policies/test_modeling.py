"""Tests of the Transporter and CLIPort policies: shapes, actions, checkpoints, factory."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vlarm.policies import CheckpointError, available_policies, load_policy, make_policy
from vlarm.policies.processing import quat_to_yaw

from .conftest import TINY_SHAPE, make_frame, tiny_overrides

NAMES = ["transporter", "cliport"]


def _batch(frames):
    from vlarm.policies.processing import frame_to_labels

    labels = [frame_to_labels(f, TINY_SHAPE) for f in frames]
    return {
        "colormap": torch.from_numpy(np.stack([f["colormap"] for f in frames])),
        "heightmap": torch.from_numpy(np.stack([f["heightmap"] for f in frames])),
        "pick_pixel": torch.from_numpy(np.stack([lab["pick_pixel"] for lab in labels])),
        "place_pixel": torch.from_numpy(np.stack([lab["place_pixel"] for lab in labels])),
        "place_rotation": torch.tensor([lab["place_rotation"] for lab in labels], dtype=torch.float32),
        "instruction": [f["instruction"] for f in frames],
    }


@pytest.mark.parametrize("name", NAMES)
def test_logit_shapes_and_loss(name):
    torch.manual_seed(0)
    policy = make_policy(name, **tiny_overrides(name))
    batch = _batch([make_frame(), make_frame((20, 20), (40, 10), 0.0)])
    inputs = policy.prepare(batch)
    assert policy.pick_logits(inputs).shape == (2, *TINY_SHAPE)
    assert policy.place_logits(inputs, batch["pick_pixel"]).shape == (2, 8, *TINY_SHAPE)
    loss, info = policy(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(info) == {"loss", "pick_loss", "place_loss"}
    loss.backward()


@pytest.mark.parametrize("name", NAMES)
def test_select_action_poses(name):
    policy = make_policy(name, **tiny_overrides(name))
    frame = make_frame()
    action = policy.select_action(frame, return_info=True)
    assert action["pick_pose"].shape == (7,) and action["pick_pose"].dtype == np.float32
    assert action["place_pose"].shape == (7,) and action["place_pose"].dtype == np.float32
    np.testing.assert_allclose(action["pick_pose"][3:], [0, 0, 0, 1])
    info = action["info"]
    assert info["pick_logits"].shape == TINY_SHAPE and info["place_logits"].shape == (8, *TINY_SHAPE)
    assert info["pick_pixel"] == np.unravel_index(info["pick_logits"].argmax(), TINY_SHAPE)
    k = info["place_rotation_bin"]
    assert np.isclose(np.cos(quat_to_yaw(action["place_pose"][3:])), math.cos(2 * math.pi * k / 8), atol=1e-5)
    row, col = info["pick_pixel"]
    assert action["pick_pose"][2] == pytest.approx(frame["heightmap"][row, col])


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    policy = make_policy(name, **tiny_overrides(name)).eval()
    for p in policy.parameters():  # move away from the identity init so the check is meaningful
        if p.requires_grad:
            p.data.add_(0.01 * torch.randn_like(p))
    policy.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["type"] == name
    loaded = load_policy(tmp_path / "ckpt")
    assert type(loaded) is type(policy) and loaded.config == policy.config
    batch = _batch([make_frame()])
    with torch.no_grad():
        a, b = policy.prepare(batch), loaded.prepare(batch)
        torch.testing.assert_close(policy.pick_logits(a), loaded.pick_logits(b), rtol=0, atol=0)
        torch.testing.assert_close(
            policy.place_logits(a, batch["pick_pixel"]),
            loaded.place_logits(b, batch["pick_pixel"]),
            rtol=0,
            atol=0,
        )


def test_checkpoint_excludes_frozen_backbone(tmp_path):
    policy = make_policy("cliport", **tiny_overrides("cliport"))
    policy.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "model.safetensors")).keys()
    assert keys and not any(k.startswith("backbone.") for k in keys)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint directory .*missing does not exist"):
        load_policy(tmp_path / "missing")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="model.safetensors is a file, not a checkpoint directory"):
        load_policy(tmp_path / "model.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json: file not found"):
        load_policy(tmp_path / "empty")
    (tmp_path / "run" / "checkpoints" / "last").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="is a training run; pass its checkpoint, e.g. .*checkpoints/last"):
        load_policy(tmp_path / "run")
    policy = make_policy("transporter", **tiny_overrides("transporter"))
    ckpt = policy.save_pretrained(tmp_path / "ckpt")
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable"):
        load_policy(ckpt)
    policy.save_pretrained(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_policy(ckpt)
    other = make_policy("transporter", **{**tiny_overrides("transporter"), "widths": (4, 8, 8, 16)})
    other.save_pretrained(ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["widths"] = [4, 8, 8, 8]
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape"):
        load_policy(ckpt)
    cfg["type"] = "nope"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown policy type"):
        load_policy(ckpt)


def test_factory():
    assert available_policies() == ["cliport", "rt1", "transporter"]
    with pytest.raises(ValueError, match="cliport, rt1, transporter"):
        make_policy("rt2")
    with pytest.raises(TypeError):
        make_policy("transporter", not_a_field=1)


# ---------------------------------------------------------------- a VLM as CLIPort's semantic stream (issue 3)
def _vlm_cliport(lit_checkpoint, **kw):
    return make_policy("cliport", **{**tiny_overrides("cliport"), "grounding_model": str(lit_checkpoint),
                                     "text_encoder": "vlm", **kw})


def test_vlm_semantic_stream_forward_and_action(lit_checkpoint):
    torch.manual_seed(0)
    policy = _vlm_cliport(lit_checkpoint)
    assert policy.config.lang_dim == 16  # the VLM's joint space
    assert policy.backbone is policy.grounder.model.visual  # LiT's locked tower is the backbone
    batch = _batch([make_frame(), make_frame((20, 20), (40, 10), 0.0)])
    maps = policy.grounding_maps(batch["colormap"], batch["heightmap"], batch["instruction"])
    assert maps.shape == (2, 2, *TINY_SHAPE)
    # Relevance is 1 on the best-matching object of each phrase, 0 on the table.
    assert maps.amax(dim=(2, 3)).tolist() == [[1.0, 1.0], [1.0, 1.0]] and maps[0, 0, 0, 0] == 0
    loss, _ = policy(batch)
    loss.backward()
    grads = [p.grad for n, p in policy.named_parameters() if ".semantic.ground." in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert policy.select_action(make_frame())["pick_pose"].shape == (7,)


def test_vlm_semantic_stream_changes_with_grounding(lit_checkpoint):
    torch.manual_seed(0)
    policy = _vlm_cliport(lit_checkpoint)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p)) if p.requires_grad else None
    batch = _batch([make_frame()])
    inputs = policy.prepare(batch)
    base = policy.pick_logits_lowres(inputs)
    inputs["grounding"] = torch.zeros_like(inputs["grounding"])
    assert not torch.allclose(base, policy.pick_logits_lowres(inputs))


def test_vlm_checkpoint_is_self_contained(lit_checkpoint, tmp_path):
    import shutil

    policy = _vlm_cliport(lit_checkpoint)
    saved = policy.save_pretrained(tmp_path / "a")
    assert json.loads((saved / "config.json").read_text())["grounding_model"] == "grounding_model"
    assert (saved / "grounding_model" / "model.safetensors").is_file()
    moved = shutil.move(str(saved), str(tmp_path / "elsewhere"))
    loaded = load_policy(moved)
    assert loaded.grounder is not None and loaded.config.grounding_model.startswith(str(tmp_path / "elsewhere"))
    batch = _batch([make_frame()])
    torch.testing.assert_close(policy.pick_logits(policy.prepare(batch)), loaded.pick_logits(loaded.prepare(batch)))
    loaded.save_pretrained(tmp_path / "again")  # re-saving a loaded policy copies the model again
    assert (tmp_path / "again" / "grounding_model" / "vlm_config.json").is_file()


def test_vlm_semantic_stream_config_errors(tmp_path):
    with pytest.raises(ValueError, match="needs a grounding_model"):
        make_policy("cliport", **{**tiny_overrides("cliport"), "text_encoder": "vlm"})
    with pytest.raises(FileNotFoundError, match="missing"):
        make_policy("cliport", **{**tiny_overrides("cliport"), "grounding_model": str(tmp_path / "missing")})


def test_masked_language_input_reads_attribute_free_text(lit_checkpoint, tmp_path):
    """Issue 10: with ``language_input="masked"`` instructions differing only in mapped attributes embed the same;
    the setting is saved with the policy and refused without a grounding model."""
    masked = _vlm_cliport(lit_checkpoint, language_input="masked")
    seen, novel = masked.embed_instructions(["put the red block in the green bowl",
                                             "put the orange block in the pink bowl"])
    torch.testing.assert_close(seen, novel)
    full = _vlm_cliport(lit_checkpoint)
    a, b = full.embed_instructions(["put the red block in the green bowl", "put the orange block in the pink bowl"])
    assert not torch.allclose(a, b)
    assert load_policy(masked.save_pretrained(tmp_path / "p")).config.language_input == "masked"
    with pytest.raises(ValueError, match="needs a grounding_model"):
        make_policy("cliport", **{**tiny_overrides("cliport"), "language_input": "masked"})
    with pytest.raises(ValueError, match="'instruction' or 'masked'"):
        _vlm_cliport(lit_checkpoint, language_input="none")


def test_semantic_decoder_grounding_mismatch():
    from vlarm.policies.layers import SemanticDecoder

    dec = SemanticDecoder((4, 4, 4, 4, 4), (4, 4, 4, 4), (4, 4, 4, 4), 8, 1, grounding_dim=2)
    feats = [torch.zeros(1, 4, 64 // s, 32 // s) for s in (2, 4, 8, 16, 32)]
    laterals = [torch.zeros(1, 4, 64 // s, 32 // s) for s in (16, 8, 4, 2)]
    assert dec(feats, torch.zeros(1, 8), laterals, torch.zeros(1, 2, 64, 32)).shape == (1, 1, 32, 16)
    with pytest.raises(ValueError, match="grounding maps"):
        dec(feats, torch.zeros(1, 8), laterals)


def test_vlm_grounding_fusion_both_feeds_the_spatial_stream(lit_checkpoint):
    policy = _vlm_cliport(lit_checkpoint, grounding_fusion="both")
    assert policy.attention.spatial.down[0].in_channels == 6 + 2
    loss, _ = policy(_batch([make_frame()]))
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="grounding_fusion"):
        _vlm_cliport(lit_checkpoint, grounding_fusion="late")


def test_vlm_built_from_a_name_is_saved_with_the_policy(tmp_path):
    """A grounding model built from a name has fresh heads; the policy checkpoint must store them."""
    torch.manual_seed(0)
    policy = make_policy("cliport", **{**tiny_overrides("cliport"), "grounding_model": "lit-effnet-minilm"})
    saved = policy.save_pretrained(tmp_path / "p")
    assert (saved / "grounding_model" / "vlm_config.json").is_file()
    a, b = load_policy(saved), load_policy(saved)
    torch.testing.assert_close(a.grounder.model.image_proj.weight, b.grounder.model.image_proj.weight)
    torch.testing.assert_close(a.grounder.model.image_proj.weight, policy.grounder.model.image_proj.weight)


def test_grounding_settings_are_part_of_the_policy_config(lit_checkpoint, tmp_path):
    """Issue 10: what the grounder does is stored with the policy, so a change of the grounder's defaults cannot
    change what a saved policy sees."""
    from vlarm.vlm.grounding import PhraseGrounder

    vocab = ("red block", "green bowl", "blue bowl")
    policy = _vlm_cliport(lit_checkpoint, grounding_score="softmax", grounding_vocabulary=vocab,
                          grounding_crop_size=32, grounding_template="a photo of a {}")
    g = policy.grounder
    assert (g.score, g.vocabulary, g.crop_size, g.template) == ("softmax", vocab, 32, "a photo of a {}")
    loaded = load_policy(policy.save_pretrained(tmp_path / "p"))
    lg = loaded.grounder
    assert (lg.score, lg.vocabulary, lg.crop_size, lg.template) == ("softmax", vocab, 32, "a photo of a {}")
    # an old checkpoint's config has none of the fields: it gets the settings it was trained with
    old = _vlm_cliport(lit_checkpoint)
    defaults = PhraseGrounder.__dataclass_fields__
    assert old.grounder.score == "relative" == defaults["score"].default
    assert old.grounder.crop_size == 48 == defaults["crop_size"].default
    batch = _batch([make_frame()])
    maps = loaded.grounding_maps(batch["colormap"], batch["heightmap"], batch["instruction"])
    assert maps.shape == (1, 2, *TINY_SHAPE) and float(maps.min()) >= 0 and float(maps.max()) <= 1
