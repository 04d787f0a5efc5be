"""One entry point, :func:`create_model_and_transforms`, for every dual encoder vlarm can use (open_clip's
convention: the model always comes with its matching image transform and tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

from vlarm.vlm.checkpoint import CONFIG_NAME, CheckpointError, load_checkpoint
from vlarm.vlm.config import LiTConfig, ScratchConfig, get_model_config, list_models
from vlarm.vlm.model import DualEncoder, HFDualEncoder, OpenClipDualEncoder, build_model, minilm_tokenizer
from vlarm.vlm.transforms import ImageTransform, Tokenizer

#: OpenAI CLIP pixel statistics (0-1 scale), the defaults when a checkpoint has no preprocessor config.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_HF_KINDS = {"clip": "CLIPModel", "siglip": "SiglipModel"}


def transforms_for_config(cfg: LiTConfig | ScratchConfig) -> tuple[ImageTransform, Tokenizer]:
    """The image transform and tokenizer that belong to a built-in architecture config."""
    if isinstance(cfg, LiTConfig):
        # EfficientNet-Lite0 normalises internally, so the transform keeps [0, 255].
        image_tf = ImageTransform(cfg.image_size)
    else:
        image_tf = ImageTransform(cfg.image_size, mean=(127.5,) * 3, std=(127.5,) * 3)
    return image_tf, Tokenizer(minilm_tokenizer(), cfg.context_length)


def create_model_and_transforms(name_or_path: str | Path, **overrides) -> tuple[DualEncoder, ImageTransform, object]:
    """Build or load a dual encoder together with its image transform and tokenizer.

    ``name_or_path`` may be:

    - a built-in name from :func:`~vlarm.vlm.config.list_models` (``lit-effnet-minilm``,
    ``scratch-vit-tiny``):
      a fresh model (pretrained towers where the architecture has them, new heads); ``overrides`` replace
      config fields, e.g. ``image_size=96`` or ``unlocked_text_layers=2``;
    - a directory saved by :func:`vlarm.vlm.checkpoint.save_checkpoint` (``vlm_config.json`` +
      ``model.safetensors``);
    - a local Hugging Face ``CLIPModel`` / ``SiglipModel`` directory (``config.json`` + ``*.safetensors`` +
      tokenizer files), loaded with ``from_pretrained(dir, use_safetensors=True)``;
    - a local open_clip directory (``open_clip_config.json`` + weights), if the optional ``open_clip_torch``
      package is installed.

    Returns:
        ``(model, image_transform, tokenizer)``: the model in eval mode on CPU; ``image_transform(img)`` maps
        one image (PIL, HxWxC uint8 array, or CxHxW tensor in [0, 255]) to a ``(3, S, S)`` float32 tensor;
        ``tokenizer(list_of_str)`` returns what ``model.encode_text`` accepts.

    Raises:
        FileNotFoundError: ``name_or_path`` is neither a built-in name nor an existing path (both are listed).
        CheckpointError: the directory exists but its files are missing, corrupt or of an unknown format.
    """
    name = str(name_or_path)
    if name in list_models() and not Path(name).exists():
        cfg = get_model_config(name, **overrides)
        model = build_model(cfg).eval()
        return (model, *transforms_for_config(cfg))
    path = Path(name).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"{name!r} is neither a built-in model ({', '.join(list_models())}) nor an existing path"
        )
    if path.is_file():
        raise CheckpointError(f"{path} is a file; pass the checkpoint directory that contains it")
    if (path / CONFIG_NAME).exists():
        model = load_checkpoint(path)
        return (model, *transforms_for_config(model.config))
    if (path / "open_clip_config.json").exists():
        return _load_open_clip(path)
    if (path / "config.json").exists():
        return _load_hf(path)
    raise CheckpointError(
        f"{path} holds no recognised checkpoint: expected {CONFIG_NAME} (vlarm), config.json "
        "(Hugging Face CLIP/SigLIP) or open_clip_config.json (open_clip)"
    )


def _load_hf(path: Path) -> tuple[DualEncoder, ImageTransform, Tokenizer]:
    import transformers

    try:
        cfg = json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"corrupt Hugging Face config {path / 'config.json'}: {err}") from err
    kind = cfg.get("model_type")
    if kind is None and "type" in cfg:
        raise CheckpointError(f"{path} is a vlarm policy checkpoint ({cfg['type']}), not a vision-language model")
    if kind not in _HF_KINDS:
        raise CheckpointError(f"{path / 'config.json'} has model_type {kind!r}; supported: {sorted(_HF_KINDS)}")
    if not any(path.glob("*.safetensors")):
        raise CheckpointError(
            f"no *.safetensors weights in {path}; only safetensors are loaded (pickled .bin files are "
            f"refused). "
            "Convert them once with transformers: model.save_pretrained(dir, safe_serialization=True)"
        )
    model_cls = getattr(transformers, _HF_KINDS[kind])
    try:
        hf_model = model_cls.from_pretrained(str(path), use_safetensors=True)
    except Exception as err:  # noqa: BLE001 - transformers raises many types for bad files
        raise CheckpointError(f"could not load {_HF_KINDS[kind]} from {path}: {type(err).__name__}: {err}") from err
    try:
        hf_tok = transformers.AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"no usable tokenizer files in {path}: {type(err).__name__}: {err}") from err
    size, mean, std = _hf_image_stats(path, hf_model, kind)
    context = int(hf_model.config.text_config.max_position_embeddings)
    image_tf = ImageTransform(size, mean=tuple(255 * m for m in mean), std=tuple(255 * s for s in std))
    tok = Tokenizer(hf_tok, context, pad_to_context=(kind == "siglip"))
    return HFDualEncoder(hf_model, kind).eval(), image_tf, tok


def _hf_image_stats(path: Path, hf_model, kind: str) -> tuple[int, tuple, tuple]:
    size = int(hf_model.config.vision_config.image_size)
    mean, std = (CLIP_MEAN, CLIP_STD) if kind == "clip" else ((0.5,) * 3, (0.5,) * 3)
    pre = path / "preprocessor_config.json"
    if pre.exists():
        try:
            data = json.loads(pre.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"corrupt {pre}: {err}") from err
        mean = tuple(data.get("image_mean", mean))
        std = tuple(data.get("image_std", std))
    return size, mean, std


class _OpenClipTokenizer:
    """Adapts an open_clip tokenizer (returns ``(N, L)`` ids) to the dict convention."""

    def __init__(self, tok):
        self.tok = tok

    def __call__(self, texts):
        """Tokenise strings; returns ``{"input_ids", "attention_mask"}`` (mask all ones)."""
        ids = self.tok(texts if not isinstance(texts, str) else [texts]).long()
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _load_open_clip(path: Path):
    try:
        import open_clip
    except ImportError as err:
        raise CheckpointError(
            f"{path} is an open_clip checkpoint; install the optional `open_clip_torch` package to load it "
            "(pin torch==2.13.0 so pip does not replace torch)"
        ) from err
    uri = f"local-dir:{path}"
    try:
        oc_model, _, _ = open_clip.create_model_and_transforms(uri)
        oc_tok = open_clip.get_tokenizer(uri)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"could not load open_clip model from {path}: {type(err).__name__}: {err}") from err
    size = oc_model.visual.image_size
    size = int(size[0] if isinstance(size, tuple | list) else size)
    mean = getattr(oc_model.visual, "image_mean", None) or CLIP_MEAN
    std = getattr(oc_model.visual, "image_std", None) or CLIP_STD
    image_tf = ImageTransform(size, mean=tuple(255 * m for m in mean), std=tuple(255 * s for s in std))
    return OpenClipDualEncoder(oc_model).eval(), image_tf, _OpenClipTokenizer(oc_tok)
