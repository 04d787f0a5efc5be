"""One entry point, :func:`create_model_and_transforms`, for every dual encoder vlarm can use (open_clip's
convention: the model always comes with its matching image transform and tokenizer)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vlarm.vlm.checkpoint import CONFIG_NAME, CheckpointError, load_checkpoint
from vlarm.vlm.config import LiTConfig, ScratchConfig, get_model_config, list_models
from vlarm.vlm.model import DualEncoder, HFDualEncoder, OpenClipDualEncoder, build_model, minilm_tokenizer
from vlarm.vlm.transforms import INTERPOLATIONS, RESIZE_MODES, ImageTransform, Tokenizer

#: OpenAI CLIP pixel statistics (0-1 scale), the defaults when a checkpoint has no preprocessor config.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_HF_KINDS = {"clip": "CLIPModel", "siglip": "SiglipModel"}
#: Weight files that are Python pickles (never loaded: unpickling runs code from the file).
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: How to add the optional open_clip backend to a CPU install (named in errors and in the README).
OPEN_CLIP_INSTALL = (
    "pip install --index-url https://download.pytorch.org/whl/cpu torchvision==0.28.0 && "
    "pip install -e '.[openclip]'"
)


def _refuse_pickles(path: Path, hint: str) -> CheckpointError:
    """The error for a checkpoint directory without ``*.safetensors`` weights (pickles are never loaded)."""
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    found = f" (found {', '.join(pickles[:3])})" if pickles else ""
    return CheckpointError(
        f"no *.safetensors weights in {path}{found}; only safetensors are loaded (pickled .bin/.pt/.pth files are "
        f"refused). {hint}"
    )


def import_optional(module: str, extra: str, install: str):
    """Import an optional backend, turning any failure to import it into one :class:`CheckpointError` line.

    Args:
        module: module name, e.g. ``"open_clip"``.
        extra: the ``pyproject.toml`` extra that installs it, e.g. ``"openclip"``.
        install: the install command to suggest.

    Returns:
        The imported module.

    Raises:
        CheckpointError: the import failed: not installed (ImportError), or installed but broken, e.g. a CUDA
            build of torchvision beside vlarm's CPU torch (RuntimeError "operator torchvision::nms does not
            exist", OSError from a missing shared library). The message names the extra and the install line.
    """
    import sys

    try:
        __import__(module)
        return sys.modules[module]
    except (ImportError, RuntimeError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"the optional {module} backend could not be imported ({type(err).__name__}: {reason}); install the "
            f"'{extra}' extra with a CPU torchvision matching torch: {install}"
        ) from err


def open_clip_transform(config: Mapping[str, Any]) -> ImageTransform:
    """The image transform open_clip builds for inference from an ``open_clip_config.json`` dict.

    Implements ``open_clip.create_model_and_transforms``' preprocessing choice without importing open_clip:
    ``preprocess_cfg`` keys ``mean`` / ``std`` (0-1 scale, default OpenAI CLIP's), ``interpolation``
    (default "bicubic"; "random" is bicubic at inference), ``resize_mode`` ("shortest" default, "longest",
    "squash") and ``fill_color`` (0-255, default 0); the size is ``model_cfg.vision_cfg.image_size`` as
    open_clip takes it (else ``preprocess_cfg.size`` / ``image_size``, else 224), an int or ``[H, W]``.

    Args:
        config: the parsed ``open_clip_config.json`` (``{"model_cfg": ..., "preprocess_cfg": ...}``).

    Returns:
        An :class:`ImageTransform` with mean/std on the 0-255 scale (see its docstring for the geometry).

    Raises:
        CheckpointError: a value open_clip would reject (unknown mode or interpolation, mean/std not 1 or 3
            numbers, std <= 0, a size that is not a positive int or ``[H, W]``).
    """
    if not isinstance(config, Mapping):
        raise CheckpointError(f"open_clip_config.json must hold a JSON object, got {type(config).__name__}")
    pre = config.get("preprocess_cfg") or {}
    vision = (config.get("model_cfg") or {}).get("vision_cfg") or {}
    size = vision.get("image_size") or pre.get("size") or pre.get("image_size") or 224
    if isinstance(size, list | tuple) and len(size) == 1:
        size = size[0]
    ok = isinstance(size, int) or (isinstance(size, list | tuple) and len(size) == 2
                                   and all(isinstance(v, int) for v in size))
    if not ok or min(size if isinstance(size, list | tuple) else [size]) <= 0:
        raise CheckpointError(f"open_clip_config.json: image size must be a positive int or [H, W], got {size!r}")
    size = tuple(size) if isinstance(size, list | tuple) else size

    def three(name: str, default: tuple[float, ...]) -> tuple[float, float, float]:
        value = pre.get(name) or default
        value = [value] * 3 if isinstance(value, int | float) else list(value)
        if len(value) == 1:
            value = value * 3
        if len(value) != 3 or not all(isinstance(v, int | float) for v in value):
            raise CheckpointError(f"open_clip_config.json: preprocess_cfg.{name} must be 1 or 3 numbers, got {value!r}")
        return tuple(float(v) for v in value)

    mean, std = three("mean", CLIP_MEAN), three("std", CLIP_STD)
    if min(std) <= 0:
        raise CheckpointError(f"open_clip_config.json: preprocess_cfg.std must be > 0, got {list(std)}")
    interpolation = pre.get("interpolation") or "bicubic"
    interpolation = "bicubic" if interpolation == "random" else interpolation
    resize_mode = pre.get("resize_mode") or "shortest"
    if interpolation not in INTERPOLATIONS:
        raise CheckpointError(
            f"open_clip_config.json: preprocess_cfg.interpolation {interpolation!r} is not one of "
            f"{(*INTERPOLATIONS, 'random')}"
        )
    if resize_mode not in RESIZE_MODES:
        raise CheckpointError(
            f"open_clip_config.json: preprocess_cfg.resize_mode {resize_mode!r} is not one of {RESIZE_MODES}"
        )
    return ImageTransform(
        size,
        mean=tuple(255 * m for m in mean),
        std=tuple(255 * s for s in std),
        resize_mode=resize_mode,
        interpolation=interpolation,
        fill=float(pre.get("fill_color") or 0),
    )


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
    - a local open_clip directory (``open_clip_config.json`` + ``*.safetensors`` weights), if the optional
      ``openclip`` extra is installed (see :data:`OPEN_CLIP_INSTALL`); the image transform follows the
      config's ``preprocess_cfg`` as open_clip's does (:func:`open_clip_transform`).

    Pickled weights (``.bin`` / ``.pt`` / ``.pth``) are never loaded.

    Returns:
        ``(model, image_transform, tokenizer)``: the model in eval mode on CPU; ``image_transform(img)`` maps
        one image (PIL, HxWxC uint8 array, or CxHxW tensor in [0, 255]) to a ``(3, S, S)`` float32 tensor;
        ``tokenizer(list_of_str)`` returns what ``model.encode_text`` accepts.

    Raises:
        FileNotFoundError: ``name_or_path`` is neither a built-in name nor an existing path (both are listed).
        CheckpointError: the directory exists but its files are missing, corrupt, pickled or of an unknown
            format, or the optional backend it needs cannot be imported (the message names the extra to install).
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
        raise _refuse_pickles(
            path, "Convert them once with transformers: model.save_pretrained(dir, safe_serialization=True)"
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
    # Everything that can be checked without open_clip is checked first: the config (and the transform it
    # implies) and the weights, so pickled weights are refused before anything could unpickle them.
    cfg_path = path / "open_clip_config.json"
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"corrupt open_clip config {cfg_path}: {err}") from err
    image_tf = open_clip_transform(config)
    if not any(path.glob("*.safetensors")):
        raise _refuse_pickles(
            path,
            "Convert them once, in a session you trust the file in: load the state dict with "
            "torch.load(f, weights_only=True) and write open_clip_model.safetensors with safetensors.torch.save_file",
        )
    open_clip = import_optional("open_clip", "openclip", OPEN_CLIP_INSTALL)
    uri = f"local-dir:{path}"
    try:
        oc_model, _, _ = open_clip.create_model_and_transforms(uri)
        oc_tok = open_clip.get_tokenizer(uri)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"could not load open_clip model from {path}: {type(err).__name__}: {err}") from err
    return OpenClipDualEncoder(oc_model).eval(), image_tf, _OpenClipTokenizer(oc_tok)
