"""Loading a real CLIP checkpoint layout from a local directory, on a tiny random CLIPModel built here."""

import pytest
import torch

from vlarm.vlm import CheckpointError, create_model_and_transforms


def _tiny_clip_dir(path):
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    # A character-level byte BPE vocabulary (no merges): enough for a real CLIPTokenizer.
    chars = sorted(ByteLevel.alphabet())
    vocab = {}
    for tok in chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab[tok] = len(vocab)
    path.mkdir()
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=32,
            eos_token_id=vocab["<|endoftext|>"],
            bos_token_id=vocab["<|startoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(cfg).eval()
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return model, tok


def test_local_clip_checkpoint_loads_and_matches(tmp_path):
    ref, ref_tok = _tiny_clip_dir(tmp_path / "clip")
    model, tf, tok = create_model_and_transforms(tmp_path / "clip")
    img = torch.randint(0, 256, (40, 48, 3), dtype=torch.uint8).numpy()
    x = tf(img)[None]
    assert x.shape == (1, 3, 32, 32)
    texts = ["a red block", "a bowl"]
    with torch.no_grad():
        fi, ft = model.encode_image(x), model.encode_text(tok(texts))
        enc = ref_tok(texts, padding=True, return_tensors="pt")
        out = ref.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        rt = out if isinstance(out, torch.Tensor) else out.pooler_output
    assert fi.shape == (1, 16) and ft.shape == (2, 16)
    assert torch.allclose(ft, rt, atol=1e-5)
    assert model.logit_multiplier == pytest.approx(ref.logit_scale.exp().item(), rel=1e-5)


def test_pickled_only_hf_checkpoint_is_refused(tmp_path):
    _tiny_clip_dir(tmp_path / "clip")
    for f in (tmp_path / "clip").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(CheckpointError, match="safetensors"):
        create_model_and_transforms(tmp_path / "clip")


def test_corrupt_hf_weights(tmp_path):
    _tiny_clip_dir(tmp_path / "clip")
    for f in (tmp_path / "clip").glob("*.safetensors"):
        f.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=str(tmp_path / "clip")):
        create_model_and_transforms(tmp_path / "clip")
