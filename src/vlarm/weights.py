"""Safetensors weight files that prove they are intact: a SHA-256 digest of the tensors in the file's metadata.

safetensors has no checksum: 8 overwritten bytes in the middle of a tensor load without complaint and a policy
then runs with silently damaged weights. Every weights file vlarm writes (policies, vision-language models,
training states) goes through :func:`save_weights`, which stores

* ``"format": "pt"`` (what other safetensors loaders expect of a torch file), and
* ``"vlarm_sha256"``: SHA-256 over every tensor's name, dtype, shape and raw bytes, in name order,

and is written to a temporary file first and renamed, so a crash never leaves a half-written file under the real
name. :func:`load_weights` recomputes the digest and refuses a mismatch, and refuses non-finite floating-point
values in any file (digest or not). Files written before digests existed load with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

logger = logging.getLogger(__name__)

DIGEST_KEY = "vlarm_sha256"


class WeightsError(ValueError):
    """A weights file is missing, unreadable, damaged (digest mismatch) or holds non-finite values; the message
    names the file."""


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """Hex SHA-256 of a tensor dict: every name, dtype, shape and the raw bytes, in sorted name order.

    Args:
        tensors: name -> tensor (any dtype, any device; bytes are read from a contiguous CPU copy).

    Returns:
        A 64-character hex string; equal dicts give equal digests, and any changed byte changes it.
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_weights(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` to a safetensors file with its digest, atomically (temporary file, then rename).

    Args:
        tensors: name -> tensor; stored contiguous on the CPU.
        path: destination file; its directory must exist.
        metadata: extra string metadata (e.g. ``{"type": "cliport"}``); ``format`` and the digest are added.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        WeightsError: a tensor holds NaN or inf (nothing is written).
    """
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _check_finite(state, path)
    meta = {**(metadata or {}), "format": "pt", DIGEST_KEY: tensors_digest(state)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.chmod(tmp, 0o666 & ~_umask())   # safetensors creates its file 0600; give it the usual mode, as a JSON beside it
    os.replace(tmp, path)
    return path


def _umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file written by :func:`save_weights`, verifying its digest and its values.

    Args:
        path: the ``.safetensors`` file.

    Returns:
        ``(tensors, metadata)`` with CPU tensors.

    Raises:
        WeightsError: missing or unreadable file, a digest that does not match the tensors (the file was changed
            or damaged after it was written), or NaN/inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as err:  # noqa: BLE001 - safetensors raises several error types for damaged files
        raise WeightsError(f"{path}: unreadable safetensors file ({type(err).__name__}: {err})") from err
    stored = metadata.get(DIGEST_KEY)
    if stored is None:
        logger.warning("%s was written without a weights digest (before vlarm stored them): it cannot be verified; "
                       "re-save it to add one", path)
    elif tensors_digest(tensors) != stored:
        raise WeightsError(f"{path}: weights digest mismatch, the file was changed or damaged after it was written; "
                           "restore it from its source or retrain")
    _check_finite(tensors, path)
    return tensors, metadata


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise WeightsError(f"{path}: tensor {name!r} holds NaN or inf values; refusing damaged weights")
