"""MIAVLM: yes/no attribute answers from several views, fused independently of their order, and its baselines.

The MIAVLM paper ("Mitigating Hallucinations on Object Attributes using Multiview Images and Negative
Instructions"; REFERENCE.md Sec. 5), at the scale of a CPU:

* **Visual extractor** (paper: "Visual Extractor"): decoder blocks whose queries are learned soft prompts
  ``P`` (``l x d``) cross-attending to the tokens ``e_i`` of each view *separately* (views batched, never chained),
  ``o_i = Decoder(P, e_i)``. The paper stacks 6 blocks on a frozen image encoder; here each view's tokens ``e_i`` are
  the frozen ImageNet EfficientNet-Lite0 features of :mod:`vlarm.vision` (``effnet``: the view resized to 128 px,
  stride-8 and stride-16 maps joined into an 8 x 8 grid of 152-channel tokens, projected to ``d``) or a small CNN
  trained from scratch (``cnn``: an ``(S/8)^2`` grid), plus a [CLS] token (the projected mean of the grid); 2 blocks
  are the default.
* **Multihead sampler** (paper: "Multihead Sampler"): a 2-layer MLP decomposes each view's [CLS] into ``m = 4``
  tokens; each token's attention scores against ``P``, softmax-normalised over the views and averaged over the prompt
  tokens, give one weight per view and head; the heads are averaged: ``w`` (``n``), summing to 1.
* **MAP fusion** (paper: "MAP"): ``sum_i w_i o_i``. Softmax over views, weighted sum: permuting the views permutes
  ``w`` and ``o`` together and leaves the output unchanged, for any number of views.
* **Answer head**: the paper feeds the fused tokens to a language model trained with the LM loss on "Yes"/"No"; here
  the pooled question attends over the fused visual tokens in a few hops and an MLP gives one logit for "yes"
  (binary cross-entropy is the LM loss restricted to the two answer words).

Baselines (paper: "Benchmarks"), the same encoder, extractor and head with another fusion:

* ``concat``: the per-view outputs, each plus a learned embedding of its position in the input, concatenated
  into one token sequence: order-sensitive, as the interleaved multi-image input of OpenFlamingo;
* ``tile`` ("9in1"): all views stitched into one grid image resized to one view's size, then a single view;
* ``mean``: uniform weights (MAP without the sampler), an ablation;
* single view: any model given one view (``views=(0,)``: the front camera, the paper's "original image").

Question encoders: ``minilm`` (frozen all-MiniLM-L6-v2 token embeddings, :mod:`vlarm.text`, projected; knows words
it was never trained on, e.g. unseen colours) or ``words`` (a learned embedding of a word vocabulary built from the
training questions; unknown words share one vector).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Fusion modes: MIAVLM's MAP, the order-sensitive concatenation, 9in1 tiling, uniform mean.
FUSIONS: tuple[str, ...] = ("map", "concat", "tile", "mean")
#: Question encoders.
QUESTION_ENCODERS: tuple[str, ...] = ("minilm", "words")
#: Per-view encoders: frozen EfficientNet-Lite0 features or a small CNN trained with the rest.
VIEW_ENCODERS: tuple[str, ...] = ("effnet", "cnn")
#: EfficientNet input side (pixels) and the channels of its stride-8 (40) and stride-16 (112) maps joined.
EFFNET_INPUT, EFFNET_CHANNELS = 128, 40 + 112
#: View sets by name: the original (front) view only, or it and the eight others (the paper's two input modes).
VIEW_SETS: dict[str, tuple[int, ...]] = {"1": (0,), "1+8": tuple(range(9))}
#: Per-channel normalisation of images scaled to [0, 1].
PIXEL_MEAN, PIXEL_STD = 0.5, 0.25
_WORD = re.compile(r"[a-z]+|\?")


@dataclass
class MIAVLMConfig:
    """Hyper-parameters of a MIAVLM model or baseline (saved as ``config.json`` beside the weights).

    Attributes:
        fusion: one of :data:`FUSIONS` (``map`` is MIAVLM).
        views: indices of the benchmark views the model reads, in order (``(0,)`` = the front camera only).
        image_size: side of each view in pixels (a multiple of 8).
        view_encoder: one of :data:`VIEW_ENCODERS`.
        width: token width ``d``.
        prompt_tokens: number ``l`` of learned prompt tokens (queries of the visual extractor).
        extractor_blocks: decoder blocks of the visual extractor (paper: 6).
        attention_heads: attention heads in every transformer block.
        sampler_heads: heads ``m`` of the multihead sampler (paper: 4).
        answer_layers: attention hops of the answer head over the visual tokens.
        dropout: dropout in the transformer blocks.
        question_encoder: one of :data:`QUESTION_ENCODERS`.
        vocabulary: words of the ``words`` encoder (index 0 is padding, 1 unknown words, words from 2).
        minilm_dim: width of the MiniLM token embeddings (384).
        max_question_tokens: questions are cut to this many tokens.

    Raises:
        ValueError: an unknown fusion, view encoder or question encoder, no views, or sizes out of range.
    """

    fusion: str = "map"
    views: tuple[int, ...] = VIEW_SETS["1+8"]
    image_size: int = 64
    view_encoder: str = "effnet"
    width: int = 64
    prompt_tokens: int = 8
    extractor_blocks: int = 2
    attention_heads: int = 4
    sampler_heads: int = 4
    answer_layers: int = 2
    dropout: float = 0.1
    question_encoder: str = "minilm"
    vocabulary: tuple[str, ...] = field(default_factory=tuple)
    minilm_dim: int = 384
    max_question_tokens: int = 24

    def __post_init__(self) -> None:
        """Validate (see the class docstring) and store ``views`` / ``vocabulary`` as tuples."""
        self.views = tuple(int(v) for v in self.views)
        self.vocabulary = tuple(self.vocabulary)
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; valid: {', '.join(FUSIONS)}")
        if self.view_encoder not in VIEW_ENCODERS:
            raise ValueError(f"unknown view encoder {self.view_encoder!r}; valid: {', '.join(VIEW_ENCODERS)}")
        if self.question_encoder not in QUESTION_ENCODERS:
            raise ValueError(f"unknown question encoder {self.question_encoder!r}; valid: "
                             f"{', '.join(QUESTION_ENCODERS)}")
        if not self.views or min(self.views) < 0 or len(set(self.views)) != len(self.views):
            raise ValueError(f"views must be distinct view indices >= 0, got {self.views}")
        if self.image_size < 16 or self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, >= 16, got {self.image_size}")
        if self.width % 8 or self.width % self.attention_heads:
            raise ValueError(f"width {self.width} must be divisible by 8 (group norm) and by attention_heads "
                             f"{self.attention_heads}")
        for name in ("prompt_tokens", "extractor_blocks", "sampler_heads", "answer_layers", "max_question_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        """JSON-ready dict (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def view_set(name: str) -> tuple[int, ...]:
    """View indices of a named view set (:data:`VIEW_SETS`: ``"1"``, ``"1+8"``).

    Raises:
        ValueError: an unknown name, listing the valid ones.
    """
    if name not in VIEW_SETS:
        raise ValueError(f"unknown view set {name!r}; valid: {', '.join(VIEW_SETS)}")
    return VIEW_SETS[name]


# --------------------------------------------------------------------------------------------------- questions
def words_of(text: str) -> list[str]:
    """Lower-case words of a question, ``?`` kept as a token."""
    return _WORD.findall(text.lower())


def build_vocabulary(questions: list[str]) -> tuple[str, ...]:
    """Sorted word vocabulary of some questions (the ``words`` encoder's ``vocabulary``)."""
    return tuple(sorted({w for q in questions for w in words_of(q)}))


class QuestionFeaturizer:
    """Turns question strings into the input of the model's question encoder, caching every string.

    ``minilm``: all-MiniLM-L6-v2 token embeddings (``vlarm.text.load_sentence_encoder``), ``(N, L, 384)`` float32;
    ``words``: ``(N, L)`` int64 word ids of ``config.vocabulary``. Both come with an ``(N, L)`` bool mask, True on
    real tokens.

    Args:
        config: the model's configuration.
    """

    def __init__(self, config: MIAVLMConfig):
        self.config = config
        self._cache: dict[str, torch.Tensor] = {}
        self._index = {w: i + 2 for i, w in enumerate(config.vocabulary)}
        self._encoder = None

    def _encode_new(self, texts: list[str]) -> None:
        if self.config.question_encoder == "words":
            for t in texts:
                ids = [self._index.get(w, 1) for w in words_of(t)][: self.config.max_question_tokens]
                self._cache[t] = torch.tensor(ids or [1], dtype=torch.int64)
            return
        if self._encoder is None:
            from vlarm.text import load_sentence_encoder

            self._encoder = load_sentence_encoder()
        embs = self._encoder.model.encode(texts, output_value="token_embeddings", batch_size=128,
                                          show_progress_bar=False, convert_to_numpy=False)
        for t, e in zip(texts, embs, strict=True):
            self._cache[t] = e.detach().float().cpu()[: self.config.max_question_tokens]

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Featurize questions.

        Args:
            texts: N question strings.

        Returns:
            ``(features, mask)``: ``(N, L, 384)`` float32 (``minilm``) or ``(N, L)`` int64 (``words``), and ``(N, L)``
            bool, L the longest question's token count.

        Raises:
            ValueError: no questions.
        """
        if not texts:
            raise ValueError("no questions to featurize")
        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if new:
            self._encode_new(new)
        items = [self._cache[t] for t in texts]
        length = max(len(x) for x in items)
        mask = torch.zeros(len(items), length, dtype=torch.bool)
        if self.config.question_encoder == "words":
            feats = torch.zeros(len(items), length, dtype=torch.int64)
        else:
            feats = torch.zeros(len(items), length, items[0].shape[-1])
        for i, x in enumerate(items):
            feats[i, : len(x)] = x
            mask[i, : len(x)] = True
        return feats, mask


# --------------------------------------------------------------------------------------------------- modules
class ViewEncoder(nn.Module):
    """Small CNN: one view -> an ``(S/8)^2`` grid of tokens with learned position embeddings, and a [CLS] token.

    ``forward(images)``: ``(B, 3, S, S)`` float32 normalised images -> ``(tokens (B, (S/8)^2, d), cls (B, d))``.
    """

    def __init__(self, width: int, image_size: int):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.GELU()]

        self.net = nn.Sequential(*block(3, 32, 2), *block(32, 64, 2), *block(64, width, 2), *block(width, width, 1))
        self.pos = nn.Parameter(torch.zeros(1, (image_size // 8) ** 2, width))
        nn.init.normal_(self.pos, std=0.02)
        self.cls = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See the class docstring."""
        grid = self.net(images).flatten(2).transpose(1, 2)
        return grid + self.pos, self.cls(grid.mean(1))


class FeatureTokens(nn.Module):
    """Frozen backbone features -> tokens: ``(B, T, C)`` float32 -> ``(tokens (B, T, d), cls (B, d))``, with learned
    position embeddings and the [CLS] token the projected mean of the grid."""

    def __init__(self, channels: int, width: int, n_tokens: int):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, width))
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, width))
        nn.init.normal_(self.pos, std=0.02)
        self.cls = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See the class docstring."""
        grid = self.proj(features)
        return grid + self.pos, self.cls(grid.mean(1))


@torch.no_grad()
def effnet_tokens(backbone: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Frozen EfficientNet-Lite0 tokens of some views.

    Args:
        backbone: :func:`vlarm.vision.load_efficientnet_lite0` (eval mode).
        pixels: ``(N, 3, S, S)`` float32 RGB in [0, 1].

    Returns:
        ``(N, 64, 152)`` float32: the views resized to :data:`EFFNET_INPUT` pixels (bilinear), the stride-8 map
        (40 channels, 16 x 16, average-pooled to 8 x 8) and the stride-16 map (112 channels, 8 x 8) joined per cell,
        row-major.
    """
    x = F.interpolate(pixels * 255.0, size=(EFFNET_INPUT, EFFNET_INPUT), mode="bilinear", align_corners=False)
    feats = backbone(x)
    grid = torch.cat([F.avg_pool2d(feats[2], 2), feats[3]], dim=1)
    return grid.flatten(2).transpose(1, 2).contiguous()


class VisualExtractor(nn.Module):
    """Learned prompts ``P`` (``l x d``) cross-attending to one view's tokens through decoder blocks (MIAVLM Sec.
    "Visual Extractor": ``o_i = softmax((P W_Q)(e_i W_K)^T / sqrt(d)) e_i W_V``, stacked).

    ``forward(tokens)``: ``(N, T, d)`` tokens of N views (any mix of scenes) -> ``(N, l, d)``, each view on its own.
    """

    def __init__(self, width: int, prompt_tokens: int, blocks: int, heads: int, dropout: float):
        super().__init__()
        self.prompts = nn.Parameter(torch.randn(prompt_tokens, width) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerDecoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)
            for _ in range(blocks))
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """See the class docstring."""
        x = self.prompts.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for block in self.blocks:
            x = block(x, tokens)
        return self.norm(x)


class MultiheadSampler(nn.Module):
    """One weight per view from its [CLS] token (MIAVLM Sec. "Multihead Sampler").

    A 2-layer MLP decomposes each [CLS] into ``m`` tokens; head ``j``'s scaled dot-product scores against the prompt
    tokens are softmax-normalised over the views and averaged over prompt tokens (``weights^j``, n values); the
    result is the mean over heads, ``w = (1/m) sum_j weights^j``.

    ``forward(cls, prompts, mask=None)``: ``(B, n, d)`` [CLS] tokens, the ``(l, d)`` prompts and an optional ``(B, n)``
    bool mask of the views present (False: dropped, weight 0; at least one per row) -> ``(B, n)`` float32 weights,
    each row summing to 1; permuting the views permutes the weights the same way.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.decomposer = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, heads * width))
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)

    def forward(self, cls: torch.Tensor, prompts: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """See the class docstring."""
        b, n, d = cls.shape
        tokens = self.key(self.decomposer(cls).view(b, n, self.heads, d))         # (B, n, m, d)
        scores = torch.einsum("bnmd,ld->bnml", tokens, self.query(prompts)) / math.sqrt(d)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, :, None, None], float("-inf"))
        return scores.softmax(dim=1).mean(dim=3).mean(dim=2)                       # softmax over views


class AnswerHead(nn.Module):
    """Question-guided reading of the visual tokens -> one "yes" logit.

    The question tokens are pooled by learned attention into ``q``; each of ``hops`` rounds lets ``q`` attend over the
    visual tokens (multi-head cross-attention) and adds what it read, ``q <- q + Attn(q, V)``; an MLP on ``[q_0, v,
    q_0 * v]`` (``q_0`` the pooled question, ``v`` everything read) gives the logit. (A transformer over [answer;
    visual; question] tokens, tried first, learned far more slowly on this data at the same CPU cost.)

    ``forward(visual, question, mask)``: ``(Q, Lv, d)`` visual tokens, ``(Q, Lq, d)`` question tokens and their
    ``(Q, Lq)`` bool mask (True = real token) -> ``(Q,)`` float32 logits.
    """

    def __init__(self, width: int, hops: int, heads: int, dropout: float):
        super().__init__()
        self.pool = nn.Linear(width, 1)
        self.visual_norm = nn.LayerNorm(width)
        self.hops = nn.ModuleList(nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
                                  for _ in range(hops))
        self.query_norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(hops))
        self.out = nn.Sequential(nn.LayerNorm(3 * width), nn.Linear(3 * width, 2 * width), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(2 * width, 1))

    def forward(self, visual: torch.Tensor, question: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """See the class docstring."""
        scores = self.pool(question).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(dim=1)
        q0 = torch.einsum("ql,qld->qd", scores, question)
        v = self.visual_norm(visual)
        q = q0
        for attend, norm in zip(self.hops, self.query_norms, strict=True):
            read, _ = attend(norm(q).unsqueeze(1), v, v, need_weights=False)
            q = q + read.squeeze(1)
        read_all = q - q0
        return self.out(torch.cat([q0, read_all, q0 * read_all], dim=-1)).squeeze(-1)


def tile_views(images: torch.Tensor) -> torch.Tensor:
    """Stitch the views of each scene into one square grid image resized to one view's size ("9in1").

    Args:
        images: ``(B, n, 3, S, S)`` float32.

    Returns:
        ``(B, 1, 3, S, S)`` float32: views in row-major order on a ``ceil(sqrt(n))`` grid (empty cells zero), area-
        downsampled to ``S x S``.
    """
    b, n, c, s, _ = images.shape
    if n == 1:
        return images
    g = math.ceil(math.sqrt(n))
    grid = images.new_zeros(b, g * g, c, s, s)
    grid[:, :n] = images
    grid = grid.view(b, g, g, c, s, s).permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * s, g * s)
    return F.interpolate(grid, size=(s, s), mode="area").unsqueeze(1)


class MIAVLM(nn.Module):
    """MIAVLM and its baselines (module docstring), chosen by ``config.fusion``.

    Args:
        config: the model's hyper-parameters.

    Use :meth:`encode_views` once per scene and :meth:`answer_logits` per question (the visual side does not depend
    on the question), or :meth:`forward` for both.
    """

    def __init__(self, config: MIAVLMConfig):
        super().__init__()
        self.config = config
        d = config.width
        if config.view_encoder == "cnn":
            self.view_encoder = ViewEncoder(d, config.image_size)
        else:
            self.view_encoder = FeatureTokens(EFFNET_CHANNELS, d, (EFFNET_INPUT // 16) ** 2)
        self._backbone: list[nn.Module] = []     # the frozen EfficientNet, loaded on first use, never saved
        self.extractor = VisualExtractor(d, config.prompt_tokens, config.extractor_blocks, config.attention_heads,
                                         config.dropout)
        if config.fusion == "map":
            self.sampler = MultiheadSampler(d, config.sampler_heads)
        if config.fusion == "concat":
            self.slots = nn.Parameter(torch.randn(len(config.views), 1, d) * 0.02)
        if config.question_encoder == "words":
            self.word_embedding = nn.Embedding(len(config.vocabulary) + 2, d, padding_idx=0)
        else:
            self.question_proj = nn.Sequential(nn.LayerNorm(config.minilm_dim), nn.Linear(config.minilm_dim, d))
        self.question_pos = nn.Parameter(torch.randn(config.max_question_tokens, d) * 0.02)
        self.head = AnswerHead(d, config.answer_layers, config.attention_heads, config.dropout)

    @property
    def reads_features(self) -> bool:
        """True when the views enter as frozen backbone features (``view_encoder="effnet"``), which
        :meth:`view_inputs` computes and a training loop can cache."""
        return self.config.view_encoder == "effnet"

    def pixels(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(B, n, S, S, 3)`` uint8 RGB views (numpy or torch) -> ``(B, n', 3, S, S)`` float32 in [0, 1], tiled
        into one view (``n' = 1``) for the ``tile`` fusion.

        Raises:
            ValueError: a shape other than ``(B, n, S, S, 3)`` with the model's ``image_size``, or a view count
                other than ``len(config.views)``.
        """
        images = torch.as_tensor(images)
        s = self.config.image_size
        if images.ndim != 5 or images.shape[2:] != (s, s, 3):
            raise ValueError(f"views must be (B, n, {s}, {s}, 3) uint8, got {tuple(images.shape)}")
        if images.shape[1] != len(self.config.views):
            raise ValueError(f"this model reads {len(self.config.views)} views (benchmark views {self.config.views}), "
                             f"got {images.shape[1]}")
        x = images.permute(0, 1, 4, 2, 3).float() / 255.0
        return tile_views(x) if self.config.fusion == "tile" else x

    def backbone(self) -> nn.Module:
        """The frozen EfficientNet-Lite0 (:mod:`vlarm.vision`), loaded once; not a registered sub-module, so it is
        neither trained nor saved (DESIGN: frozen encoders are rebuilt from their own package)."""
        if not self._backbone:
            from vlarm.vision import load_efficientnet_lite0

            self._backbone.append(load_efficientnet_lite0().eval())
        return self._backbone[0]

    def view_inputs(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """What :meth:`encode_views` reads: ``(B, n', T, 152)`` float32 frozen features (``effnet``) or the
        ``(B, n', 3, S, S)`` float32 normalised pixels (``cnn``) of ``(B, n, S, S, 3)`` uint8 views.

        Raises:
            ValueError: see :meth:`pixels`.
        """
        x = self.pixels(images)
        if not self.reads_features:
            return (x - PIXEL_MEAN) / PIXEL_STD
        b, n = x.shape[:2]
        return effnet_tokens(self.backbone(), x.flatten(0, 1)).view(b, n, -1, EFFNET_CHANNELS)

    def encode_views(self, images: torch.Tensor | np.ndarray | None = None, inputs: torch.Tensor | None = None,
                     view_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fused visual tokens of each scene.

        Args:
            images: ``(B, n, S, S, 3)`` uint8 views, in ``config.views`` order; or
            inputs: their :meth:`view_inputs` (e.g. cached features), float.
            view_mask: optional ``(B, n)`` bool, False for views to leave out (view dropout in training; at least
                one True per row); ``map`` and ``mean`` fusion only, which take any subset of views.

        Returns:
            ``(tokens, weights)``: ``(B, Lv, d)`` float32 (``Lv = l``, or ``n * l`` for ``concat``) and the ``(B, n)``
            view weights (``n = 1`` for ``tile``; uniform for ``mean`` and ``tile``; None for ``concat``).

        Raises:
            ValueError: neither or both of ``images`` and ``inputs``; a ``view_mask`` for ``concat`` or ``tile``, of
                another shape, or with a row of no view; see also :meth:`pixels`.
        """
        if (images is None) == (inputs is None):
            raise ValueError("give the views either as images or as their view_inputs, not both or neither")
        x = self.view_inputs(images) if inputs is None else inputs.float()
        b, n = x.shape[:2]
        if view_mask is not None:
            if self.config.fusion not in ("map", "mean"):
                raise ValueError(f"a view mask needs map or mean fusion, not {self.config.fusion!r}")
            if tuple(view_mask.shape) != (b, n) or not bool(view_mask.any(dim=1).all()):
                raise ValueError(f"view_mask must be ({b}, {n}) bool with at least one view per scene, got "
                                 f"{tuple(view_mask.shape)}")
        tokens, cls = self.view_encoder(x.flatten(0, 1))
        out = self.extractor(tokens).view(b, n, self.config.prompt_tokens, -1)    # o_i, each view on its own
        if self.config.fusion == "concat":
            return (out + self.slots[:n]).flatten(1, 2), None
        if self.config.fusion == "map":
            weights = self.sampler(cls.view(b, n, -1), self.extractor.prompts, view_mask)
        else:
            keep = torch.ones(b, n) if view_mask is None else view_mask.float()
            weights = keep / keep.sum(1, keepdim=True)
        return torch.einsum("bn,bnld->bld", weights, out), weights

    def encode_questions(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(Q, L, 384)`` float MiniLM features or ``(Q, L)`` int64 word ids (:class:`QuestionFeaturizer`) ->
        ``(Q, L, d)`` question tokens."""
        if self.config.question_encoder == "words":
            x = self.word_embedding(features)
        else:
            x = self.question_proj(features)
        return x + self.question_pos[: x.shape[1]]

    def answer_logits(self, visual: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(Q, Lv, d)`` visual tokens of each question's scene and its featurized question -> ``(Q,)`` "yes"
        logits."""
        return self.head(visual, self.encode_questions(features, mask), mask)

    def forward(self, images: torch.Tensor | np.ndarray, features: torch.Tensor, mask: torch.Tensor,
                scene: torch.Tensor | None = None) -> torch.Tensor:
        """"Yes" logits of questions about scenes.

        Args:
            images: ``(B, n, S, S, 3)`` uint8 views of B scenes.
            features: featurized questions (:class:`QuestionFeaturizer`), Q of them.
            mask: their ``(Q, L)`` bool token mask.
            scene: ``(Q,)`` int64 index of each question's scene in ``images`` (default: question i is about scene i).

        Returns:
            ``(Q,)`` float32 logits; ``sigmoid`` gives the probability of "yes".
        """
        visual, _ = self.encode_views(images)
        if scene is not None:
            visual = visual[scene]
        return self.answer_logits(visual, features, mask)


def answer_text(probability: float, threshold: float = 0.5) -> str:
    """``"Yes"`` when the probability of yes is at least ``threshold``, else ``"No"``."""
    return "Yes" if probability >= threshold else "No"
