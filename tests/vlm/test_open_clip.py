"""open_clip interop without open_clip: the config -> transform logic, pickle refusal, optional-import errors."""

from __future__ import annotations

import builtins
import json
import sys
import types

import numpy as np
import pytest
import torch

from vlarm.vlm import CheckpointError, create_model_and_transforms
from vlarm.vlm.factory import CLIP_MEAN, CLIP_STD, OPEN_CLIP_INSTALL, import_optional, open_clip_transform
from vlarm.vlm.transforms import ImageTransform

# The shape of a real open_clip_config.json (e.g. a ViT-B-32 / SigLIP repository on the Hugging Face hub).
SIGLIP_LIKE = {
    "model_cfg": {"embed_dim": 768, "vision_cfg": {"image_size": 256, "patch_size": 16}, "text_cfg": {}},
    "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bilinear",
                       "resize_mode": "squash"},
}


def _unit(tf: ImageTransform) -> ImageTransform:
    """The same geometry without normalisation, so outputs are pixel values."""
    return ImageTransform(tf.size, resize_mode=tf.resize_mode, interpolation=tf.interpolation, fill=tf.fill)


def test_config_fields_become_the_transform():
    tf = open_clip_transform(SIGLIP_LIKE)
    assert tf.output_hw == (256, 256) and tf.resize_mode == "squash" and tf.interpolation == "bilinear"
    np.testing.assert_allclose(tf.mean, [127.5] * 3) and np.testing.assert_allclose(tf.std, [127.5] * 3)
    # open_clip's defaults when preprocess_cfg is absent: OpenAI CLIP statistics, bicubic, shortest side.
    tf = open_clip_transform({"model_cfg": {"vision_cfg": {"image_size": 224}}})
    assert (tf.output_hw, tf.resize_mode, tf.interpolation, tf.fill) == ((224, 224), "shortest", "bicubic", 0.0)
    np.testing.assert_allclose(tf.mean, [255 * m for m in CLIP_MEAN])
    np.testing.assert_allclose(tf.std, [255 * s for s in CLIP_STD])
    # size falls back to preprocess_cfg, 'random' interpolation is bicubic at inference, fill_color is kept.
    tf = open_clip_transform({"preprocess_cfg": {"size": [192, 160], "interpolation": "random",
                                                 "resize_mode": "longest", "fill_color": 128, "mean": 0.25}})
    assert tf.output_hw == (192, 160) and tf.interpolation == "bicubic" and tf.fill == 128.0
    np.testing.assert_allclose(tf.mean, [63.75] * 3)
    out = tf(np.zeros((40, 30, 3), np.uint8))
    assert out.shape == (3, 192, 160)


@pytest.mark.parametrize(
    ("pre", "message"),
    [
        ({"resize_mode": "crop"}, "resize_mode 'crop' is not one of"),
        ({"interpolation": "nearest"}, "interpolation 'nearest' is not one of"),
        ({"mean": [0.5, 0.5]}, "mean must be 1 or 3 numbers"),
        ({"std": [0.0, 1.0, 1.0]}, "std must be > 0"),
        ({"size": "big"}, "image size must be a positive int"),
    ],
)
def test_config_values_open_clip_rejects_are_clear_errors(pre, message):
    with pytest.raises(CheckpointError, match=message):
        open_clip_transform({"preprocess_cfg": pre})


def test_resize_sizes_follow_open_clip():
    # A 480 x 640 camera image into a 224 model (torchvision's Resize / open_clip's ResizeKeepRatio rules).
    assert ImageTransform(224, resize_mode="shortest").resized_hw(480, 640) == (224, 298)  # int(298.67)
    assert ImageTransform(224, resize_mode="shortest").resized_hw(640, 480) == (298, 224)
    assert ImageTransform(224, resize_mode="longest").resized_hw(480, 640) == (168, 224)
    assert ImageTransform(224, resize_mode="squash").resized_hw(480, 640) == (224, 224)
    assert ImageTransform((224, 256), resize_mode="shortest").resized_hw(480, 640) == (224, 299)  # round(298.67)
    with pytest.raises(ValueError, match="resize_mode"):
        ImageTransform(8, resize_mode="crop")


def test_shortest_crops_the_centre_longest_pads_squash_keeps_everything():
    # A 4 x 8 image whose pixel value is its column index: the geometry is readable from the output.
    cols = np.tile(np.arange(8, dtype=np.uint8) * 30, (4, 1))
    img = np.repeat(cols[:, :, None], 3, axis=2)
    shortest = _unit(ImageTransform(4, resize_mode="shortest"))(img)
    assert shortest.shape == (3, 4, 4)
    np.testing.assert_allclose(shortest[0, 0], [60, 90, 120, 150])  # columns 2..5: int(round((8 - 4) / 2)) = 2
    longest = _unit(ImageTransform(8, resize_mode="longest", fill=7.0))(img)
    assert longest.shape == (3, 8, 8)
    assert (longest[:, :2] == 7).all() and (longest[:, 6:] == 7).all()  # 2 rows of fill above and below
    np.testing.assert_allclose(longest[0, 2], cols[0])  # the whole image in between, unchanged
    squash = _unit(ImageTransform(4, resize_mode="squash"))(img)
    assert squash.shape == (3, 4, 4)
    row = squash[0, 0].numpy()
    assert (np.diff(row) > 0).all() and row[0] < 30 and row[-1] > 180  # both ends of the image survive
    np.testing.assert_allclose(row[1:3], [75, 135])  # interior pixels: mean of columns (2, 3) and (4, 5)


def test_interpolation_is_honoured_and_bicubic_stays_in_pixel_range():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, 2:] = 255  # a hard edge: bicubic overshoots it, PIL's uint8 output clamps
    bilinear = _unit(ImageTransform(16, interpolation="bilinear"))(img)
    bicubic = _unit(ImageTransform(16, interpolation="bicubic"))(img)
    assert not torch.allclose(bilinear, bicubic)
    assert bicubic.min() >= 0 and bicubic.max() <= 255
    raw = torch.nn.functional.interpolate(torch.tensor(img, dtype=torch.float32).permute(2, 0, 1)[None],
                                          size=(16, 16), mode="bicubic", align_corners=False)
    assert raw.min() < 0 or raw.max() > 255  # so the clamp above is doing something


def test_default_transform_keeps_clip_centre_crop_for_square_and_small_images():
    tf = ImageTransform(8)
    x = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_allclose(tf(x), torch.tensor(x, dtype=torch.float32).permute(2, 0, 1))  # identity
    assert tf(np.zeros((3, 5), np.uint8)).shape == (3, 8, 8)


def _open_clip_dir(path, weights: dict[str, bytes], config=None):
    path.mkdir()
    (path / "open_clip_config.json").write_text(json.dumps(config or SIGLIP_LIKE))
    for name, data in weights.items():
        (path / name).write_bytes(data)
    return path


@pytest.fixture
def no_open_clip_nor_unpickling(monkeypatch):
    """Fail the test if anything imports open_clip or calls torch.load."""
    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        if name.split(".")[0] == "open_clip":
            raise AssertionError("open_clip was imported")
        return real_import(name, *args, **kwargs)

    def no_load(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(builtins, "__import__", guarded)
    monkeypatch.setattr(torch, "load", no_load)


@pytest.mark.parametrize("name", ["open_clip_pytorch_model.bin", "model.pt", "epoch_32.pth"])
def test_pickled_open_clip_weights_are_refused_before_import(tmp_path, name, no_open_clip_nor_unpickling):
    path = _open_clip_dir(tmp_path / "oc", {name: b"\x80\x04not really a pickle"})
    with pytest.raises(CheckpointError, match=r"only safetensors are loaded \(pickled") as err:
        create_model_and_transforms(path)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_hf_and_open_clip_refusals_say_the_same(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (hf / "pytorch_model.bin").write_bytes(b"x")
    oc = _open_clip_dir(tmp_path / "oc", {"open_clip_pytorch_model.bin": b"x"})
    messages = []
    for path in (hf, oc):
        with pytest.raises(CheckpointError) as err:
            create_model_and_transforms(path)
        messages.append(str(err.value))
    core = "only safetensors are loaded (pickled .bin/.pt/.pth files are refused)"
    assert all(core in m for m in messages)


def _safetensors_dir(tmp_path, config=None):
    from safetensors.torch import save_file

    path = _open_clip_dir(tmp_path / "oc", {}, config)
    save_file({"w": torch.zeros(1)}, str(path / "open_clip_model.safetensors"))
    return path


@pytest.mark.parametrize(
    "failure",
    [
        ImportError("No module named 'open_clip'"),
        RuntimeError("operator torchvision::nms does not exist"),
        OSError("libcudart.so.12: cannot open shared object file"),
    ],
)
def test_failed_optional_import_is_one_line_naming_the_extra(tmp_path, monkeypatch, failure):
    path = _safetensors_dir(tmp_path)
    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name.split(".")[0] == "open_clip":
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "open_clip", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(CheckpointError) as err:
        create_model_and_transforms(path)
    message = str(err.value)
    assert "'openclip' extra" in message and OPEN_CLIP_INSTALL in message and "\n" not in message
    assert type(failure).__name__ in message and str(failure) in message


def test_import_optional_sees_a_missing_module_in_sys_modules(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # Python's marker for "cannot be imported"
    with pytest.raises(CheckpointError, match=r"ModuleNotFoundError.*'openclip' extra"):
        import_optional("open_clip", "openclip", OPEN_CLIP_INSTALL)
    assert import_optional("json", "none", "-") is json


def test_loaded_open_clip_model_gets_the_configs_transform(tmp_path, monkeypatch):
    # A stand-in open_clip module: vlarm must take the transform from the config, not from the model.
    calls = []

    class FakeModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(1.0))

    fake = types.ModuleType("open_clip")
    fake.create_model_and_transforms = lambda uri: (calls.append(uri), (FakeModel(), None, None))[1]
    fake.get_tokenizer = lambda uri: (lambda texts: torch.ones(len(texts), 4, dtype=torch.long))
    monkeypatch.setitem(sys.modules, "open_clip", fake)
    config = {**SIGLIP_LIKE, "preprocess_cfg": {**SIGLIP_LIKE["preprocess_cfg"], "resize_mode": "longest"}}
    path = _safetensors_dir(tmp_path, config)
    _, tf, tok = create_model_and_transforms(path)
    assert calls == [f"local-dir:{path}"]
    assert (tf.output_hw, tf.resize_mode, tf.interpolation) == ((256, 256), "longest", "bilinear")
    assert tok(["a red block"])["input_ids"].shape == (1, 4)
