"""RT-1, the Robotics Transformer (Brohan et al., RSS 2023, Sec. 3, Fig. 3): a FiLM-conditioned EfficientNet turns
each camera frame and the instruction into 81 (9 x 9) tokens, TokenLearner keeps 8 per frame, and a decoder-only
Transformer over a 6-frame history outputs the action as tokens (:mod:`vlarm.policies.rt1.tokenizer`), trained
with cross-entropy.

vlarm's version: EfficientNet-Lite0 (ImageNet, :mod:`vlarm.vision.efficientnet`) in place of B3, FiLM after every
MBConv block initialised to identity ((1 + gamma) x + beta with gamma = beta = 0); the instruction embedded by
MiniLM (:mod:`vlarm.text`) in place of USE. Each frame contributes its 8 image tokens followed by 6 action slots
(learned embeddings that carry no action values, as RT-1 feeds zeros in place of the action tokens); the action of
frame t is read from its slots' outputs. With ``state_token`` (vlarm's option, not RT-1's) a frame also carries one
token embedding the env's proprioceptive state, between its image tokens and its action slots. Attention is RT-1's
causal mask over the flattened (frame, slot) order (:func:`attention_mask`). At run time the image tokens of past
frames are cached (:class:`RT1Policy`), so a control step runs the FiLM-EfficientNet once, on the newest frame.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlarm.policies.base import Policy, register_policy
from vlarm.policies.rt1.configuration import RT1Config
from vlarm.policies.rt1.tokenizer import MODES, NUM_BINS, TOKENS_PER_ACTION, decode_action

#: Size of the proprioceptive state of :class:`vlarm.envs.closed_loop.ClosedLoopEnv` (tip xyz, quaternion, holding).
STATE_DIM = 8


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al., AAAI 2018) as RT-1 uses it: ``(1 + gamma) * x + beta`` with
    ``gamma``, ``beta`` linear in the instruction embedding, both layers zero-initialised so FiLM starts as the
    identity (RT-1 Sec. 3, "so as not to disrupt the pretrained weights").

    Args:
        text_dim: instruction embedding size.
        channels: feature channels modulated.
    """

    def __init__(self, text_dim: int, channels: int):
        super().__init__()
        self.gamma = nn.Linear(text_dim, channels)
        self.beta = nn.Linear(text_dim, channels)
        for layer in (self.gamma, self.beta):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, C, H, W)`` float; ``text``: ``(N, text_dim)`` float -> ``(N, C, H, W)``."""
        return (1 + self.gamma(text))[:, :, None, None] * x + self.beta(text)[:, :, None, None]


class FiLMEfficientNet(nn.Module):
    """EfficientNet-Lite0 with FiLM after each of its MBConv blocks and a 1x1 conv to ``d_model`` (RT-1 Sec. 3).

    With ``stride=32`` (RT-1) all 16 blocks and the 1280-channel head run; with ``stride=16`` only the blocks up to
    the last one at stride 16 (112 channels), so the map is twice as fine and cheaper to compute. With
    ``frozen_blocks = k > 0`` (vlarm's CPU option) the stem, blocks ``0..k-1`` and their FiLM layers are frozen, so
    their output (:meth:`frozen_features`) can be computed once per training frame and fed to
    :meth:`trainable_features`.

    ``forward(images, text)``: ``(N, 3, H, W)`` float RGB in [0, 255] and ``(N, text_dim)`` -> ``(N, d_model,
    H/stride, W/stride)`` (9 x 9 at 288 x 288 and stride 32; 3 x 4 or 6 x 8 at 96 x 128).
    """

    def __init__(self, text_dim: int, d_model: int, pretrained: bool = True, stride: int = 32,
                 frozen_blocks: int = 0):
        super().__init__()
        from vlarm.vision.efficientnet import load_efficientnet_lite0

        self.backbone = load_efficientnet_lite0(pretrained=pretrained)
        net = self.backbone.net
        self.stride = stride
        self.n_blocks = _blocks_within_stride(net, stride)
        if not 0 <= frozen_blocks < self.n_blocks:
            raise ValueError(f"frozen_blocks must be in [0, {self.n_blocks - 1}] at stride {stride}, "
                             f"got {frozen_blocks}")
        self.frozen_blocks = frozen_blocks
        blocks = net._blocks[: self.n_blocks]
        self.films = nn.ModuleList(FiLM(text_dim, block._bn2.num_features) for block in blocks)
        channels = net._conv_head.out_channels if stride == 32 else blocks[-1]._bn2.num_features
        self.project = nn.Conv2d(channels, d_model, kernel_size=1)
        if frozen_blocks:
            for module in (net._conv_stem, net._bn0, *blocks[:frozen_blocks], *self.films[:frozen_blocks]):
                module.requires_grad_(False)

    def frozen_features(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The stem and the first ``frozen_blocks`` FiLM-blocks: ``(N, 3, H, W)`` float RGB in [0, 255] and
        ``(N, text_dim)`` -> ``(N, C, h, w)`` float (the stem's output when ``frozen_blocks`` is 0)."""
        from vlarm.vision.efficientnet import PIXEL_MEAN, PIXEL_STD

        net = self.backbone.net
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_blocks):
            x = net._swish(net._bn0(net._conv_stem((images - PIXEL_MEAN) / PIXEL_STD)))
            for block, film in zip(net._blocks[: self.frozen_blocks], self.films, strict=False):
                x = film(block(x), text)
        return x

    def trainable_features(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The remaining FiLM-blocks, head (stride 32) and projection: :meth:`frozen_features`'s output and
        ``(N, text_dim)`` -> ``(N, d_model, H/stride, W/stride)``."""
        net = self.backbone.net
        k = self.frozen_blocks
        for block, film in zip(net._blocks[k: self.n_blocks], self.films[k:], strict=True):
            x = film(block(x), text)
        if self.stride == 32:
            x = net._swish(net._bn1(net._conv_head(x)))
        return self.project(x)

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """See the class docstring."""
        return self.trainable_features(self.frozen_features(images, text), text)

    def train(self, mode: bool = True) -> FiLMEfficientNet:
        """Train mode everywhere except the backbone's batch-norm statistics, which stay the ImageNet ones."""
        super().train(mode)
        for m in self.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self


def _blocks_within_stride(net: nn.Module, stride: int) -> int:
    """How many of ``net``'s MBConv blocks run before its feature map's stride exceeds ``stride``."""
    total = net._conv_stem.stride[0]
    for i, block in enumerate(net._blocks):
        total *= block._depthwise_conv.stride[0]
        if total > stride:
            return i
    return len(net._blocks)


class TokenLearner(nn.Module):
    """TokenLearner (Ryoo et al., NeurIPS 2021; RT-1 Sec. 3): ``num_tokens`` learned spatial attention maps, each a
    softmax over the input tokens, pool ``(N, S, D)`` tokens into ``(N, num_tokens, D)``.

    Args:
        dim: token width D.
        num_tokens: output tokens (RT-1: 8).
        hidden: width of the MLP that computes the maps.
    """

    def __init__(self, dim: int, num_tokens: int, hidden: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, num_tokens))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(N, S, D)`` -> ``(N, num_tokens, D)``."""
        weights = self.mlp(self.norm(tokens)).softmax(dim=1)          # (N, S, num_tokens), sums to 1 over S
        return torch.einsum("nsk,nsd->nkd", weights, tokens)


def attention_mask(frames: int, tokens_per_frame: int, device=None) -> torch.Tensor:
    """RT-1's causal attention mask over ``frames`` frames of ``tokens_per_frame`` tokens each, flattened frame by
    frame: token i may attend token j iff j comes no later than i in that order (so a token of frame t sees every
    token of frames < t and never one of frames > t).

    Returns:
        ``(L, L)`` bool, True = may attend, ``L = frames * tokens_per_frame``.
    """
    n = frames * tokens_per_frame
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


class DecoderLayer(nn.Module):
    """Pre-norm Transformer decoder layer (self-attention with ``heads`` heads of width ``key_size``, GELU MLP)."""

    def __init__(self, d_model: int, heads: int, key_size: int, feed_forward: int, dropout: float):
        super().__init__()
        self.heads, self.key_size, self.dropout = heads, key_size, dropout
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * heads * key_size)
        self.out = nn.Linear(heads * key_size, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, feed_forward), nn.GELU(), nn.Linear(feed_forward, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, L, d_model)``; ``mask``: ``(L, L)`` bool (True = may attend) -> ``(B, L, d_model)``."""
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, self.key_size).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, n, -1)))
        return x + self.drop(self.mlp(self.norm2(x)))


class RT1Network(nn.Module):
    """The RT-1 network: images + instruction embedding -> action token logits.

    ``forward(images, text, state=None)``: ``(B, T, 3, H, W)`` float RGB in [0, 255] (T <= ``history``),
    ``(B, text_dim)`` float and, with ``config.state_token``, ``(B, T, 8)`` float states -> ``(B, T, 6, 256)`` logits
    of each frame's action tokens.
    """

    def __init__(self, config: RT1Config):
        super().__init__()
        c = config
        self.config = c
        self.image_encoder = FiLMEfficientNet(c.text_dim, c.d_model, pretrained=c.backbone_pretrained,
                                              stride=c.token_stride, frozen_blocks=c.frozen_blocks)
        h, w = (v // c.token_stride for v in c.image_size)
        self.image_position = nn.Parameter(torch.randn(h * w, c.d_model) * 0.02) if c.position_embedding else None
        if not c.train_backbone:
            for p in self.image_encoder.backbone.parameters():
                p.requires_grad_(False)
        self.token_learner = TokenLearner(c.d_model, c.tokens_per_frame, c.token_learner_hidden)
        self.state_embed = nn.Linear(STATE_DIM, c.d_model) if c.state_token else None
        self.slots_per_frame = c.tokens_per_frame + int(c.state_token) + TOKENS_PER_ACTION
        self.position = nn.Parameter(torch.zeros(c.history, self.slots_per_frame, c.d_model))
        self.action_slots = nn.Parameter(torch.zeros(TOKENS_PER_ACTION, c.d_model))
        nn.init.normal_(self.position, std=0.02)
        nn.init.normal_(self.action_slots, std=0.02)
        self.layers = nn.ModuleList(DecoderLayer(c.d_model, c.heads, c.key_size, c.feed_forward, c.dropout)
                                    for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, NUM_BINS)

    def frame_tokens(self, images: torch.Tensor | None, text: torch.Tensor, state: torch.Tensor | None = None,
                     features: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, 3, H, W)`` images, ``(N, text_dim)`` embeddings and (with ``state_token``) ``(N, 8)`` states ->
        ``(N, tokens_per_frame (+1), d_model)`` tokens. ``features``, in place of ``images``: the frames'
        :meth:`FiLMEfficientNet.frozen_features` computed earlier (training with ``frozen_blocks``).

        Raises:
            ValueError: ``state`` missing when the config has a state token, or given when it has none; not
                exactly one of ``images`` and ``features``.
        """
        if (state is None) != (self.state_embed is None):   # before the backbone runs
            raise ValueError("this RT-1 config " + ("needs the (N, 8) proprioceptive state (state_token=True)"
                                                    if state is None else "has no state token; pass state=None"))
        if (images is None) == (features is None):
            raise ValueError("pass either images or their frozen features, not both or neither")
        if features is None:
            features = self.image_encoder.frozen_features(images, text)
        feats = self.image_encoder.trainable_features(features, text).flatten(2).transpose(1, 2)   # (N, h * w, D)
        if self.image_position is not None:
            feats = feats + self.image_position
        tokens = self.token_learner(feats)
        if self.state_embed is None:
            return tokens
        return torch.cat([tokens, self.state_embed(state.float())[:, None]], dim=1)

    def action_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, T, K, d_model)`` frame tokens (:meth:`frame_tokens`) -> ``(B, T, 6, 256)`` logits (T <= history)."""
        b, t, k, d = tokens.shape
        if t > self.config.history:
            raise ValueError(f"at most {self.config.history} frames per window, got {t}")
        slots = self.action_slots.expand(b, t, TOKENS_PER_ACTION, d)
        x = torch.cat([tokens, slots], dim=2) + self.position[:t]
        x = x.reshape(b, t * self.slots_per_frame, d)
        mask = attention_mask(t, self.slots_per_frame, device=x.device)
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x).view(b, t, self.slots_per_frame, d)[:, :, k:]
        return self.head(x)

    def forward(self, images: torch.Tensor | None, text: torch.Tensor, state: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        """See the class docstring; ``features`` ``(B, T, C, h, w)`` replaces ``images`` as in :meth:`frame_tokens`."""
        frames = images if images is not None else features
        if frames is None:
            raise ValueError("pass either images or their frozen features")
        b, t = frames.shape[:2]
        tokens = self.frame_tokens(None if images is None else images.flatten(0, 1), text.repeat_interleave(t, dim=0),
                                   None if state is None else state.flatten(0, 1),
                                   features=None if features is None else features.flatten(0, 1))
        return self.action_logits(tokens.view(b, t, *tokens.shape[1:]))


@register_policy
class RT1Policy(Policy):
    """RT-1 as a vlarm policy (closed-loop, ``ee_delta`` actions).

    ``forward(batch)`` (training): ``images`` ``(B, T, H, W, 3)`` uint8, ``text`` ``(B, text_dim)`` float32,
    ``tokens`` ``(B, T, 6)`` int64 targets, ``state`` ``(B, T, 8)`` float32 (only with ``config.state_token``),
    or ``features`` ``(B, T, C, h, w)`` (the frames' frozen features, float16 or float32) in place of ``images``,
    optional ``valid`` ``(B, T)`` bool (frames that count) -> mean
    cross-entropy over the valid frames' action tokens, with ``{"loss", "token_accuracy"}``.

    ``select_action(observation, instruction)`` (acting): ``observation["rgb"]`` ``(H, W, 3)`` uint8 of the policy
    camera (and ``observation["state"]`` ``(8,)`` with ``config.state_token``); keeps the last ``history`` frames'
    tokens (a new episode: :meth:`reset`), pads a short history by
    repeating its first frame (as training does at an episode's start) and returns the newest frame's action,
    greedy per token (the mode token restricted to arm / terminate).
    """

    name = "rt1"
    config_class = RT1Config
    action_mode = "ee_delta"

    def __init__(self, config: RT1Config):
        super().__init__(config)
        self.net = RT1Network(config)
        self.text_encoder = None           # lazily vlarm.text.load_sentence_encoder(); tests may set a stand-in
        self._history: deque = deque(maxlen=config.history)
        self._text_cache: dict[str, torch.Tensor] = {}

    def reset(self) -> None:
        """Forget the frame history (call at every episode start)."""
        self._history.clear()

    def embed_instructions(self, texts: list[str]) -> torch.Tensor:
        """``(N, text_dim)`` float32 embeddings of ``texts`` (frozen sentence encoder, cached per string)."""
        if self.text_encoder is None:
            from vlarm.text import load_sentence_encoder

            self.text_encoder = load_sentence_encoder()
        out = []
        for text in texts:
            if text not in self._text_cache:
                self._text_cache[text] = torch.as_tensor(np.asarray(self.text_encoder.encode(text), np.float32))
            out.append(self._text_cache[text])
        return torch.stack(out).to(self.device)

    def token_metrics(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token cross-entropy ``(B, T, n_tokens)`` float (nats) and exact argmax matches ``(B, T, n_tokens)``
        bool of a batch (:meth:`forward`'s keys; ``valid`` is not applied)."""
        state = batch["state"].to(self.device) if self.config.state_token else None
        if "features" in batch:
            images, features = None, batch["features"].to(self.device).float()
        else:
            images, features = batch["images"].to(self.device).permute(0, 1, 4, 2, 3).float(), None
        logits = self.net(images, batch["text"].to(self.device), state, features=features)    # (B, T, 6, 256)
        target = batch["tokens"].to(self.device)
        per_token = F.cross_entropy(logits.flatten(0, 2), target.flatten(), reduction="none").view(target.shape)
        return per_token, logits.detach().argmax(-1) == target

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Cross-entropy on the action tokens (class docstring)."""
        per_token, hit = self.token_metrics(batch)
        valid = batch.get("valid")
        valid = torch.ones(per_token.shape[:2], dtype=torch.bool, device=self.device) if valid is None \
            else valid.to(self.device)
        weight = valid[..., None].float().expand_as(per_token)
        loss = (per_token * weight).sum() / weight.sum().clamp(min=1)
        correct = (hit.float() * weight).sum() / weight.sum().clamp(min=1)
        return loss, {"loss": float(loss.detach()), "token_accuracy": float(correct)}

    @torch.no_grad()
    def select_action(self, observation: dict, instruction: str | None = None) -> dict:
        """The next ``ee_delta`` action (class docstring).

        Raises:
            ValueError: the image is not ``(H, W, 3)`` uint8 of the configured size.
        """
        rgb = np.asarray(observation["rgb"])
        if rgb.shape != (*self.config.image_size, 3):
            raise ValueError(f"RT-1 was configured for {self.config.image_size} images, got {rgb.shape[:2]}; build "
                             f"the env with the matching image_scale")
        text = self.embed_instructions([instruction or observation["instruction"]])
        image = torch.as_tensor(rgb, device=self.device).permute(2, 0, 1)[None].float()
        state = (torch.as_tensor(np.asarray(observation["state"], np.float32), device=self.device)[None]
                 if self.config.state_token else None)
        self._history.append(self.net.frame_tokens(image, text, state)[0])
        frames = list(self._history)
        frames = [frames[0]] * (self.config.history - len(frames)) + frames
        logits = self.net.action_logits(torch.stack(frames)[None])[0, -1]       # (6, 256)
        tokens = logits.argmax(-1)
        tokens[-1] = logits[-1, list(MODES)].argmax()
        return decode_action(tokens.cpu().numpy())


__all__ = ["STATE_DIM", "FiLM", "FiLMEfficientNet", "RT1Network", "RT1Policy", "TokenLearner", "attention_mask"]
