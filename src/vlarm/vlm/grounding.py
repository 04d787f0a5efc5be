"""Dense grounding of an instruction's referring phrases in a top-down tabletop image, with a dual encoder.

This is how a VLM becomes CLIPort's semantic ("what") stream (issue 3, item 7): every object on the table is
embedded by the VLM's image encoder, every referring phrase of the instruction ("red blocks", "green bowl") by
its text encoder, and each phrase becomes a ``(H, W)`` relevance map that is high on the objects the phrase
names. Attribute knowledge (e.g. the colour "orange") then comes from the VLM's pre-training, not from the
policy's demonstrations, which is CLIPort's argument for CLIP (Shridhar et al., CoRL 2021, Sec. 3.2).

Objects are found without labels, like the class-agnostic proposals of ViLD (Gu et al., ICLR 2022, Sec. 3.1):
connected components of the heightmap above the table. Each proposal is embedded from a square crop centred
on it (the crops the VLM was pre-trained on, :mod:`vlarm.vlm.sim_captions`), and scored against a phrase by
cosine similarity times the VLM's logit scale, relative to the best-matching proposal:
``relevance_n = exp(s * (cos_n - max_m cos_m))``, so the best match is 1, equally good matches (several red
blocks) are all close to 1 and worse ones fall towards 0.

Images are ``(H, W, 3)`` uint8 colour maps and ``(H, W)`` float32 heightmaps in metres (rows = +y, cols = +x).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vlarm.vlm.model import DualEncoder

#: Words that separate referring phrases in an instruction (verbs, articles, prepositions, conjunctions).
FUNCTION_WORDS = frozenset(
    "a an the all every each some put place pick move push stack set take bring drop grab it them this that "
    "in into inside on onto to of from at with and or then up down please".split()
)


def referring_phrases(instruction: str) -> list[str]:
    """Split an instruction into its referring phrases: maximal runs of words that are not function words.

    ``"put the red blocks in a green bowl"`` -> ``["red blocks", "green bowl"]``.

    Args:
        instruction: the instruction (any case; punctuation is ignored).

    Returns:
        The phrases in order (may be empty).
    """
    phrases, current = [], []
    for word in re.findall(r"[a-z0-9]+", instruction.lower()):
        if word in FUNCTION_WORDS:
            if current:
                phrases.append(" ".join(current))
            current = []
        else:
            current.append(word)
    if current:
        phrases.append(" ".join(current))
    return phrases


def select_phrases(instruction: str, n: int) -> list[str]:
    """``n`` query phrases for an instruction: the first and last referring phrases (what to pick, where to
    place) for ``n = 2``; in general the first ``n - 1`` and the last, repeating or falling back to the whole
    instruction when it has fewer phrases.

    Raises:
        ValueError: if ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    phrases = referring_phrases(instruction) or [instruction.strip() or "object"]
    if n == 1:
        return [phrases[0]]
    head = phrases[: n - 1] + [phrases[min(len(phrases) - 1, n - 2)]] * max(0, n - 1 - len(phrases))
    return head + [phrases[-1]]


def object_proposals(
    heightmap: np.ndarray, min_height: float = 0.004, min_area: int = 20
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Class-agnostic object proposals: connected components of the heightmap above ``min_height``.

    Args:
        heightmap: ``(H, W)`` float32 metres above the table.
        min_height: metres; lower pixels are table.
        min_area: components with fewer pixels are noise and dropped.

    Returns:
        ``(labels, centres)``: ``(H, W)`` int32 map with 0 for the table and ``k`` for proposal ``k`` (1-based,
        consecutive), and the ``(row, col)`` centre (mean pixel) of each proposal.
    """
    from scipy import ndimage

    raw, n = ndimage.label(np.asarray(heightmap) > min_height)
    labels = np.zeros(raw.shape, dtype=np.int32)
    centres = []
    for k in range(1, n + 1):
        mask = raw == k
        if mask.sum() < min_area:
            continue
        labels[mask] = len(centres) + 1
        rows, cols = np.nonzero(mask)
        centres.append((int(round(rows.mean())), int(round(cols.mean()))))
    return labels, centres


def crop_centered(image: np.ndarray, center: tuple[int, int], size: int) -> np.ndarray:
    """``(size, size, C)`` crop of ``(H, W, C)`` ``image`` centred on ``(row, col)``, zero-padded at borders."""
    half = size // 2
    padded = np.pad(image, ((half, half), (half, half), (0, 0)))
    r, c = int(center[0]) + half, int(center[1]) + half
    return padded[r - half : r - half + size, c - half : c - half + size].copy()


def isolated_crops(
    colormap: np.ndarray, labels: np.ndarray, centres: list[tuple[int, int]], size: int
) -> list[np.ndarray]:
    """One crop per proposal with every *other* proposal painted over in the table's colour.

    Tabletop objects can stand closer together than in the VLM's pre-training crops; painting neighbours out
    keeps each crop about one object (ViLD embeds each proposal's own crop for the same reason).

    Args:
        colormap: ``(H, W, 3)`` uint8.
        labels: ``(H, W)`` int32 proposal labels from :func:`object_proposals` (0 = table).
        centres: the proposals' ``(row, col)`` centres from :func:`object_proposals`.
        size: crop side in pixels.

    Returns:
        ``len(centres)`` ``(size, size, 3)`` uint8 crops.
    """
    table = labels == 0
    fill = np.median(colormap[table], axis=0).astype(np.uint8) if table.any() else np.zeros(3, np.uint8)
    crops = []
    for k, centre in enumerate(centres, start=1):
        image = colormap.copy()
        image[(labels != 0) & (labels != k)] = fill
        crops.append(crop_centered(image, centre, size))
    return crops


@dataclass
class PhraseGrounder:
    """A dual encoder used as a dense phrase grounder (see the module docstring).

    Args:
        model: the dual encoder (eval mode).
        transform: its image transform (crop -> ``(3, S, S)`` float tensor).
        tokenizer: its tokenizer.
        crop_size: crop side in colour-map pixels (48 = 15 cm, as in the VLM's pre-training crops).
        template: how a phrase is turned into a query text.
    """

    model: DualEncoder
    transform: object
    tokenizer: object
    crop_size: int = 48
    template: str = "a {}"

    def __post_init__(self) -> None:
        self._text_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs) -> PhraseGrounder:
        """Load a dual encoder with :func:`vlarm.vlm.create_model_and_transforms` and wrap it.

        Raises:
            FileNotFoundError / vlarm.vlm.checkpoint.CheckpointError: as ``create_model_and_transforms``.
        """
        from vlarm.vlm.factory import create_model_and_transforms

        model, transform, tokenizer = create_model_and_transforms(name_or_path)
        return cls(model.eval(), transform, tokenizer, **kwargs)

    @property
    def embed_dim(self) -> int:
        """Joint embedding size D."""
        return int(self.encode_texts(["object"]).shape[1])

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """``(N, D)`` float32 L2-normalised text embeddings (cached per string)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            emb = self.model.encode_text(self.tokenizer(missing), normalize=True).float()
            self._text_cache.update(zip(missing, emb, strict=True))
        return torch.stack([self._text_cache[t] for t in texts])

    @torch.no_grad()
    def relevance_maps(self, colormap: np.ndarray, heightmap: np.ndarray, phrases: list[str]) -> np.ndarray:
        """Relevance of every pixel to each phrase.

        Args:
            colormap: ``(H, W, 3)`` uint8.
            heightmap: ``(H, W)`` float32 metres.
            phrases: K referring phrases (e.g. from :func:`select_phrases`).

        Returns:
            ``(K, H, W)`` float32 in [0, 1]: on proposal ``n``, ``exp(s * (cos_n - max_m cos_m))``; 0 on the
            table (and everywhere if there is no proposal).
        """
        labels, centres = object_proposals(heightmap)
        out = np.zeros((len(phrases), *labels.shape), dtype=np.float32)
        if not centres:
            return out
        crops = torch.stack([self.transform(c) for c in isolated_crops(colormap, labels, centres, self.crop_size)])
        regions = self.model.encode_image(crops, normalize=True).float()  # (N, D)
        texts = self.encode_texts([self.template.format(p) for p in phrases])  # (K, D)
        cos = texts @ regions.t()  # (K, N)
        scores = torch.exp(self.model.logit_multiplier * (cos - cos.max(dim=1, keepdim=True).values))
        table = np.concatenate([np.zeros((len(phrases), 1), np.float32), scores.numpy()], axis=1)
        return np.stack([row[labels] for row in table]).astype(np.float32)


__all__ = ["FUNCTION_WORDS", "PhraseGrounder", "crop_centered", "isolated_crops", "object_proposals",
           "referring_phrases", "select_phrases"]
