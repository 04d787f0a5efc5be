"""Our own dual-encoder checkpoints: a directory with ``vlm_config.json`` and ``model.safetensors``.

Nothing is ever unpickled; the weights carry a SHA-256 digest verified on load (:mod:`vlarm.weights`). Locked
pretrained towers (``DualEncoder.locked_prefixes``) are not stored: they are rebuilt from their packages, which
keeps a LiT checkpoint at a few megabytes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from vlarm.vlm.config import config_from_dict
from vlarm.vlm.model import DualEncoder, build_model
from vlarm.weights import WeightsError, load_weights, save_weights

CONFIG_NAME = "vlm_config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "vlarm-vlm"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint exists but cannot be read (corrupt, truncated, wrong format or mismatched weights)."""


def save_checkpoint(model: DualEncoder, directory: str | Path, extra: dict | None = None) -> Path:
    """Save a :class:`~vlarm.vlm.model.LiTModel` or :class:`~vlarm.vlm.model.ScratchModel`.

    Args:
        model: the model; must have a ``config`` dataclass.
        directory: created if needed; existing files of the same name are overwritten.
        extra: JSON-serialisable metadata stored under ``"extra"`` (e.g. training data, step).

    Returns:
        The directory as a ``Path``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
        if not k.startswith(tuple(model.locked_prefixes))
    }
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": dataclasses.asdict(model.config),
        "excluded_prefixes": list(model.locked_prefixes),
        "extra": extra or {},
    }
    save_weights(state, directory / WEIGHTS_NAME)
    (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def read_checkpoint_meta(directory: str | Path) -> dict:
    """Read and validate ``vlm_config.json`` of a checkpoint directory.

    Raises:
        FileNotFoundError: the directory or its config file is missing (the path is named).
        CheckpointError: the config is not valid JSON or not a vlarm-vlm checkpoint.
    """
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no vlarm VLM checkpoint config at {path}")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"corrupt checkpoint config {path}: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint config (missing 'format'/'config')")
    return meta


def caption_vocabulary(directory: str | Path) -> list[str]:
    """Every "<colour> <kind>" phrase a checkpoint's captions covered (``extra.colors`` x ``extra.kinds`` in
    ``vlm_config.json``): the contrast vocabulary of the softmax grounding score.

    Raises:
        FileNotFoundError / CheckpointError: as :func:`read_checkpoint_meta`.
        ValueError: the checkpoint does not list the colours and kinds it was trained on.
    """
    extra = read_checkpoint_meta(directory).get("extra", {})
    if not extra.get("colors") or not extra.get("kinds"):
        raise ValueError(f"{directory} does not list the colours and kinds it was trained on (extra.colors / "
                         "extra.kinds in vlm_config.json)")
    return [f"{c} {k}" for c in extra["colors"] for k in extra["kinds"]]


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file into a dict of CPU tensors, verifying its digest (:func:`vlarm.weights.load_weights`).

    Raises:
        FileNotFoundError: the file is missing (the path is named).
        CheckpointError: the file is not a readable safetensors file, its digest does not match, or it holds
            NaN/inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing weights file {path}")
    try:
        return load_weights(path)[0]
    except WeightsError as err:
        raise CheckpointError(str(err)) from err


def load_checkpoint(directory: str | Path) -> DualEncoder:
    """Rebuild a model saved by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: the directory, config or weights file is missing.
        CheckpointError: a file is corrupt, or the stored weights do not match the architecture (the message
            lists missing/unexpected keys or the first shape mismatch).
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    meta = read_checkpoint_meta(directory)
    try:
        cfg = config_from_dict(dict(meta["config"]))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"invalid model config in {directory / CONFIG_NAME}: {err}") from err
    state = load_state_file(directory / WEIGHTS_NAME)
    model = build_model(cfg)
    excluded = tuple(meta.get("excluded_prefixes", []))
    expected = {k for k in model.state_dict() if not k.startswith(excluded)}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"weights in {directory / WEIGHTS_NAME} do not match the {cfg.arch} architecture: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    own = model.state_dict()
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise CheckpointError(
                f"shape mismatch for {key} in {directory / WEIGHTS_NAME}: "
                f"stored {tuple(value.shape)}, model {tuple(own[key].shape)}"
            )
    model.load_state_dict(state, strict=False)
    return model.eval()
