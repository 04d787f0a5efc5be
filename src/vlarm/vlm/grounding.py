"""Dense grounding of an instruction's referring phrases in a top-down tabletop image, with a dual encoder.

This is how a VLM becomes CLIPort's semantic ("what") stream (issue 3, item 7): every object on the table is
embedded by the VLM's image encoder, every referring phrase of the instruction ("red blocks", "green bowl") by
its text encoder, and each phrase becomes a ``(H, W)`` relevance map that is high on the objects the phrase
names. Attribute knowledge (e.g. the colour "orange") then comes from the VLM's pre-training, not from the
policy's demonstrations, which is CLIPort's argument for CLIP (Shridhar et al., CoRL 2021, Sec. 3.2).

Objects are found without labels, like the class-agnostic proposals of ViLD (Gu et al., ICLR 2022, Sec. 3.1):
connected components of the heightmap above the table. Each proposal is embedded from a square crop centred
on it (the crops the VLM was pre-trained on, :mod:`vlarm.vlm.sim_captions`), and scored against a phrase by
cosine similarity, in one of two ways (``PhraseGrounder.score``):

* ``"relative"`` (issue 3): times the VLM's logit scale, relative to the best-matching proposal,
  ``relevance_n = exp(s * (cos_n - max_m cos_m))``. The best match is 1 and worse ones fall towards 0, so the
  map is winner-take-all: of two bowls of the named colour whose cosines differ by 0.2, one gets 1, the other ~0.
* ``"calibrated"`` (issue 10): a per-proposal probability that the proposal is what the phrase names,
  ``relevance_n = sigmoid(a * cos_n + b)``, with ``(a, b)`` fitted by logistic regression (Platt scaling) on
  labelled proposals of validation scenes (:func:`fit_calibration`). Every matching object scores high on its
  own, whatever the others score.
* ``"softmax"`` (issue 10): each proposal is classified among the phrases plus a contrast ``vocabulary`` (e.g.
  every "<colour> <object>" the VLM knows), ``relevance_n = softmax_j(s * cos_jn)[phrase]``, zero-shot
  classification of each object as in CLIP (Radford et al. 2021, Sec. 3.1.2). Also per object, and it needs no
  fitting: the contrast phrases tell what "matching" means for each object. A contrast phrase whose text
  embedding is within ``SYNONYM_COSINE`` of the query's ("red block" for "red blocks") names the same thing and
  is left out of that query's contrast set.

A policy stores the grounder's settings (score, calibration, crop size, template) in its own config, so a later
change of the defaults here cannot change what a shipped policy sees.

Images are ``(H, W, 3)`` uint8 colour maps and ``(H, W)`` float32 heightmaps in metres (rows = +y, cols = +x).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vlarm.vlm.model import DualEncoder

#: How proposal cosines become relevance (see the module docstring).
GROUNDING_SCORES = ("relative", "calibrated", "softmax")

#: Text-text cosine above which a contrast phrase counts as a synonym of the query (softmax score). Measured
#: with ``checkpoints/lit-sim-all-colors``: plural/singular and "bowls"/"bowl" pairs 0.91-0.96, different
#: colours or objects at most 0.62.
SYNONYM_COSINE = 0.85

#: Words that separate referring phrases in an instruction (verbs, articles, prepositions, conjunctions; every
#: task family's verb, so no verb is grounded as an object, and "pile", whose referent is "the pile *of* X").
FUNCTION_WORDS = frozenset(
    "a an the all every each some put place pick move push stack set take bring drop grab pack align solve "
    "pile it them this that in into inside on onto to of from at with and or then up down please".split()
)


def referring_phrases(instruction: str) -> list[str]:
    """Split an instruction into its referring phrases: maximal runs of words that are not function words.

    ``"put the red blocks in a green bowl"`` -> ``["red blocks", "green bowl"]``.

    Args:
        instruction: the instruction (any case; punctuation is ignored).

    Returns:
        The phrases in order (may be empty).
    """
    return [text for text, is_phrase in _segments(instruction) if is_phrase]


def _segments(instruction: str) -> list[tuple[str, bool]]:
    """The instruction as ``(text, is_phrase)`` pieces in order: each function word alone (False) and each maximal
    run of other words (True), lower case, punctuation dropped."""
    pieces: list[tuple[str, bool]] = []
    for word in re.findall(r"[a-z0-9]+", instruction.lower()):
        if word in FUNCTION_WORDS:
            pieces.append((word, False))
        elif pieces and pieces[-1][1]:
            pieces[-1] = (f"{pieces[-1][0]} {word}", True)
        else:
            pieces.append((word, True))
    return pieces


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


def mask_phrases(instruction: str, n: int) -> str:
    """The instruction with the phrases its relevance maps cover reduced to their head nouns (last words).

    ``"put the orange block in the pink bowl"`` -> ``"put the block in the bowl"`` for ``n = 2``: the words the
    maps already carry (attributes) are removed from what a policy's language stream reads, so an instruction
    with attribute values never seen in the demonstrations reads exactly like a seen one (issue 10: CLIPort's
    language input is out of distribution on unseen colours; the maps, computed from the full phrases by a VLM
    that knows every colour, are not). Phrases of the instruction that the maps do not cover
    (:func:`select_phrases`) are kept whole; punctuation and case are normalised as in
    :func:`referring_phrases`.

    Args:
        instruction: the instruction.
        n: number of relevance maps (``CLIPortConfig.n_phrases``).

    Returns:
        The masked instruction, lower case, words separated by single spaces.

    Raises:
        ValueError: if ``n < 1``.
    """
    covered = set(select_phrases(instruction, n))
    return " ".join(text.rsplit(" ", 1)[-1] if is_phrase and text in covered else text
                    for text, is_phrase in _segments(instruction))


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
        score: ``"relative"`` or ``"calibrated"`` (see the module docstring).
        calibration: ``(a, b)`` of the calibrated score ``sigmoid(a * cos + b)`` (:func:`fit_calibration`).
        vocabulary: contrast phrases of the softmax score (phrases already among the queries are not repeated).
    """

    model: DualEncoder
    transform: object
    tokenizer: object
    crop_size: int = 48
    template: str = "a {}"
    score: str = "relative"
    calibration: tuple[float, float] = (1.0, 0.0)
    vocabulary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Validate the settings.

        Raises:
            ValueError: an unknown ``score``, a non-positive ``crop_size`` or a malformed ``calibration``.
        """
        if self.score not in GROUNDING_SCORES:
            raise ValueError(f"grounding score must be one of {GROUNDING_SCORES}, got {self.score!r}")
        if int(self.crop_size) < 4:
            raise ValueError(f"crop_size must be >= 4 pixels, got {self.crop_size}")
        self.calibration = tuple(float(v) for v in self.calibration)
        if len(self.calibration) != 2 or not all(np.isfinite(self.calibration)):
            raise ValueError(f"calibration is (a, b) with finite a, b; got {self.calibration}")
        self.vocabulary = tuple(str(v) for v in self.vocabulary)
        if self.score == "softmax" and not self.vocabulary:
            raise ValueError("the softmax score needs a contrast vocabulary (e.g. every '<colour> <object>' phrase)")
        self._text_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs) -> PhraseGrounder:
        """Load a dual encoder with :func:`vlarm.vlm.create_model_and_transforms` and wrap it.

        Raises:
            FileNotFoundError / vlarm.vlm.checkpoint.CheckpointError: as ``create_model_and_transforms``.
        """
        from vlarm.vlm.factory import create_model_and_transforms

        model, transform, tokenizer = create_model_and_transforms(name_or_path)
        # channels-last weights: the image tower's depthwise convolutions run ~1.7x faster on the CPU (measured on
        # 11 crops of 64 px, EfficientNet-Lite0, one thread); the embeddings are the same up to float rounding.
        getattr(model, "visual", model).to(memory_format=torch.channels_last)
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
    def proposal_similarities(
        self, colormap: np.ndarray, heightmap: np.ndarray, phrases: list[str]
    ) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray]:
        """Cosine similarity of each phrase to each object proposal.

        Args:
            colormap: ``(H, W, 3)`` uint8.
            heightmap: ``(H, W)`` float32 metres.
            phrases: K referring phrases.

        Returns:
            ``(labels, centres, cos)``: the proposals of :func:`object_proposals` and ``(K, N)`` float32 cosines
            (``N = 0`` when the table is empty).
        """
        labels, centres = object_proposals(heightmap)
        if not centres:
            return labels, centres, np.zeros((len(phrases), 0), np.float32)
        crops = torch.stack([self.transform(c) for c in isolated_crops(colormap, labels, centres, self.crop_size)])
        tower = getattr(self.model, "visual", self.model)   # crops go where the image tower is (a policy may move it)
        device = next(iter(tower.parameters()), torch.empty(0)).device
        crops = crops.to(device).contiguous(memory_format=torch.channels_last)
        regions = self.model.encode_image(crops, normalize=True).float().cpu()  # (N, D)
        texts = self.encode_texts([self.template.format(p) for p in phrases])  # (K, D)
        return labels, centres, (texts @ regions.t()).numpy().astype(np.float32)

    def scores(self, cos: np.ndarray, contrast: np.ndarray | None = None,
               contrast_mask: np.ndarray | None = None) -> np.ndarray:
        """Relevance in [0, 1] of ``(K, N)`` cosines under :attr:`score` (module docstring).

        Args:
            cos: ``(K, N)`` cosines of the K query phrases to N proposals.
            contrast: ``(V, N)`` cosines of the contrast vocabulary (the softmax score only).
            contrast_mask: ``(K, V)`` bool, which contrast phrases each query competes with (default: all).
        """
        cos = torch.as_tensor(cos, dtype=torch.float32)
        if self.score == "calibrated":
            a, b = self.calibration
            return torch.sigmoid(a * cos + b).numpy()
        if cos.shape[1] == 0:
            return cos.numpy()
        s = self.model.logit_multiplier
        if self.score == "softmax":
            other = s * torch.as_tensor(contrast, dtype=torch.float32)                     # (V, N)
            mask = (torch.ones(len(cos), len(other), dtype=torch.bool) if contrast_mask is None
                    else torch.as_tensor(contrast_mask, dtype=torch.bool))
            out = []
            for k in range(len(cos)):   # each query competes with its contrast phrases, not with the other queries
                out.append(torch.softmax(torch.cat([s * cos[k : k + 1], other[mask[k]]]), dim=0)[0])
            return torch.stack(out).numpy()
        return torch.exp(s * (cos - cos.max(dim=1, keepdim=True).values)).numpy()

    def contrast_mask(self, phrases: list[str]) -> np.ndarray:
        """``(K, V)`` bool: the vocabulary phrases that are not synonyms of each query (text cosine below
        :data:`SYNONYM_COSINE`)."""
        q = self.encode_texts([self.template.format(p) for p in phrases])
        v = self.encode_texts([self.template.format(p) for p in self.vocabulary])
        return (q @ v.t()).numpy() < SYNONYM_COSINE

    @torch.no_grad()
    def relevance_maps(self, colormap: np.ndarray, heightmap: np.ndarray, phrases: list[str]) -> np.ndarray:
        """Relevance of every pixel to each phrase.

        Args:
            colormap: ``(H, W, 3)`` uint8.
            heightmap: ``(H, W)`` float32 metres.
            phrases: K referring phrases (e.g. from :func:`select_phrases`).

        Returns:
            ``(K, H, W)`` float32 in [0, 1]: on proposal ``n`` its :meth:`scores` value; 0 on the table (and
            everywhere if there is no proposal).
        """
        contrast = list(self.vocabulary) if self.score == "softmax" else []
        labels, centres, cos = self.proposal_similarities(colormap, heightmap, list(phrases) + contrast)
        out = np.zeros((len(phrases), *labels.shape), dtype=np.float32)
        if not centres:
            return out
        mask = self.contrast_mask(phrases) if contrast else None
        scores = self.scores(cos[: len(phrases)], cos[len(phrases):], mask)
        table = np.concatenate([np.zeros((len(phrases), 1), np.float32), scores], axis=1)
        return np.stack([row[labels] for row in table]).astype(np.float32)


def fit_calibration(cos: np.ndarray, matches: np.ndarray) -> tuple[float, float]:
    """Platt scaling of grounding cosines: logistic regression ``P(match) = sigmoid(a * cos + b)``.

    Args:
        cos: ``(M,)`` float cosines of (phrase, proposal) pairs from validation scenes.
        matches: ``(M,)`` bool, whether the proposal is an object the phrase names.

    Returns:
        ``(a, b)`` floats for :attr:`PhraseGrounder.calibration`.

    Raises:
        ValueError: mismatched lengths, or labels of only one class (nothing to separate).
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(cos, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(matches, dtype=bool).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} cosines but {len(y)} labels")
    if y.all() or not y.any():
        raise ValueError("calibration needs both matching and non-matching (phrase, proposal) pairs")
    model = LogisticRegression(C=1e4, max_iter=1000).fit(x, y)
    return float(model.coef_[0, 0]), float(model.intercept_[0])

__all__ = ["FUNCTION_WORDS", "GROUNDING_SCORES", "SYNONYM_COSINE", "PhraseGrounder", "crop_centered", "fit_calibration",
           "isolated_crops", "object_proposals", "referring_phrases", "select_phrases"]
