"""Typed model configurations; the shapes themselves live as JSON in ``model_configs/`` (open_clip style)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


@dataclass
class LiTConfig:
    """LiT dual encoder: locked pretrained image tower, pretrained text tower, trained projection heads.

    Zhai et al. 2022, "LiT: Zero-Shot Transfer with Locked-image text Tuning", Sec. 3 (the "Lu" setting:
    locked image tower, unlocked text side). Here the text tower starts pretrained (MiniLM) and is locked
    unless ``unlocked_text_layers > 0``.

    Attributes:
        embed_dim: size D of the joint embedding space.
        image_size: square input side in pixels fed to EfficientNet-Lite0 (stride 32).
        context_length: maximum number of text tokens (WordPiece, including [CLS]/[SEP]).
        unlocked_text_layers: number of top MiniLM transformer layers to train (0 = text tower locked).
        pretrained: load ImageNet / MiniLM weights (False gives random towers, for tests only).
        head_hidden: hidden width of a 2-layer MLP head; 0 means a single linear projection.
    """

    arch: str = "lit"
    embed_dim: int = 256
    image_size: int = 224
    context_length: int = 64
    unlocked_text_layers: int = 0
    pretrained: bool = True
    head_hidden: int = 0


@dataclass
class ScratchConfig:
    """Small ViT image tower + transformer text tower, both trained from scratch (CLIP Sec. 2.4 at toy scale).

    Attributes:
        embed_dim: joint embedding size D.
        image_size: square input side in pixels; must be divisible by ``patch_size``.
        patch_size: ViT patch side in pixels (Dosovitskiy et al. 2021, Sec. 3.1).
        vision_width / vision_layers / vision_heads: ViT width, depth and heads.
        text_width / text_layers / text_heads: text transformer width, depth and heads.
        context_length: maximum number of text tokens; the vocabulary is MiniLM's WordPiece (30,522 tokens).
        vocab_size: size of the token-embedding table.
    """

    arch: str = "scratch"
    embed_dim: int = 128
    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 192
    vision_layers: int = 4
    vision_heads: int = 3
    text_width: int = 128
    text_layers: int = 4
    text_heads: int = 4
    context_length: int = 32
    vocab_size: int = 30522
    mlp_ratio: float = 4.0
    extra: dict = field(default_factory=dict)


CONFIG_CLASSES = {"lit": LiTConfig, "scratch": ScratchConfig}
_CONFIG_DIR = "model_configs"


def list_models() -> list[str]:
    """Names of the built-in architectures (one JSON file each in ``vlarm/vlm/model_configs``)."""
    root = resources.files("vlarm.vlm").joinpath(_CONFIG_DIR)
    return sorted(p.name[: -len(".json")] for p in root.iterdir() if p.name.endswith(".json"))


def config_from_dict(data: dict) -> LiTConfig | ScratchConfig:
    """Build a typed config from a dict with an ``arch`` key.

    Raises:
        ValueError: on an unknown ``arch`` or unknown fields (the message lists the allowed ones).
    """
    arch = data.get("arch")
    if arch not in CONFIG_CLASSES:
        raise ValueError(f"unknown model arch {arch!r}; expected one of {sorted(CONFIG_CLASSES)}")
    cls = CONFIG_CLASSES[arch]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {arch} config fields {sorted(unknown)}; allowed: {sorted(names)}")
    return cls(**data)


def get_model_config(name: str, **overrides) -> LiTConfig | ScratchConfig:
    """Read the built-in JSON config ``name`` and apply keyword ``overrides`` (e.g. ``image_size=96``).

    Raises:
        KeyError: if ``name`` is not a built-in model (the message lists :func:`list_models`).
    """
    path = resources.files("vlarm.vlm").joinpath(_CONFIG_DIR).joinpath(f"{name}.json")
    if not path.is_file():
        raise KeyError(f"unknown model {name!r}; built-in models: {list_models()}")
    data = json.loads(path.read_text())
    data.update(overrides)
    return config_from_dict(data)


def config_to_json(cfg: LiTConfig | ScratchConfig, path: Path) -> None:
    """Write a config as indented JSON to ``path``."""
    Path(path).write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
