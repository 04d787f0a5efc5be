"""CLIPort (Shridhar et al., CoRL 2021, Sec. 3): two-stream, language-conditioned Transporter.

Each of the attention (pick) and transport (place key/query) networks has

* a semantic ("what") stream: frozen pretrained image features (EfficientNet-Lite0 on RGB, standing in for
CLIP's
  ResNet50, which is not installable here) decoded to stride 2 with the instruction embedding (MiniLM,
  standing in for CLIP's text encoder) fused multiplicatively at every decoder stage;
* a spatial ("where") stream: a Transporter FCN on RGB-D whose decoder features feed the semantic decoder
through
  lateral connections.

The two streams' outputs are added. The frozen backbone runs once per image and is shared by both networks
(and can be cached by the training loop); it is not saved in checkpoints.

With ``CLIPortConfig.grounding_model`` set, a vision-language model becomes the semantic stream (issue 3, item
7): relevance maps of the instruction's referring phrases (:class:`vlarm.vlm.grounding.PhraseGrounder`) enter
every semantic decoder stage, a LiT model's locked image tower is the backbone, and ``text_encoder="vlm"``
takes the instruction embedding from its text tower. The VLM checkpoint is copied next to the policy's weights.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vlarm.policies.base import register_policy
from vlarm.policies.cliport.configuration_cliport import CLIPortConfig
from vlarm.policies.layers import SemanticDecoder, SpatialStream
from vlarm.policies.pick_place import PickPlacePolicy
from vlarm.policies.processing import rgb_chw

#: Sub-directory of a policy checkpoint that holds its copy of the grounding model.
GROUNDING_DIR = "grounding_model"


def hash_embedding(text: str, dim: int) -> np.ndarray:
    """Deterministic bag-of-words embedding: sum of per-word Gaussian vectors seeded by CRC32, L2-normalised.

    Args:
        text: instruction.
        dim: embedding size.

    Returns:
        ``(dim,)`` float32 unit vector (zeros for an empty string).
    """
    out = np.zeros(dim, dtype=np.float64)
    for word in text.lower().split():
        out += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(dim)
    norm = np.linalg.norm(out)
    return (out / norm if norm > 0 else out).astype(np.float32)


class TwoStream(nn.Module):
    """Spatial stream + semantic decoder with laterals; output = sum of both streams' heads (CLIPort Fig. 2).

    Args:
        config: :class:`CLIPortConfig`.
        backbone_channels: frozen backbone channels at strides 2..32.
        out_dim: output channels.

        grounding_dim: channels of the grounding maps (0: none); with ``config.grounding_fusion == "both"`` they
            are also input channels of the spatial stream.

    ``forward(image, feats, lang, grounding=None)``: ``(B, 6, H, W)`` RGB-D input, backbone maps,
    ``(B, lang_dim)`` embedding, ``(B, grounding_dim, H, W)`` grounding maps -> ``(B, out_dim, H/2, W/2)``.
    """

    def __init__(
        self, config: CLIPortConfig, backbone_channels: tuple[int, ...], out_dim: int, grounding_dim: int = 0
    ):
        super().__init__()
        self.early_grounding = bool(grounding_dim) and config.grounding_fusion == "both"
        self.spatial = SpatialStream(6 + (grounding_dim if self.early_grounding else 0), config.widths, out_dim)
        self.semantic = SemanticDecoder(
            backbone_channels, config.semantic_widths, config.widths, config.lang_dim, out_dim, grounding_dim
        )

    def forward(
        self,
        image: torch.Tensor,
        feats: list[torch.Tensor],
        lang: torch.Tensor,
        grounding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """See the class docstring."""
        out, laterals = self.spatial(torch.cat([image, grounding], dim=1) if self.early_grounding else image)
        return out + self.semantic(feats, lang, laterals, grounding)


@register_policy
class CLIPortPolicy(PickPlacePolicy):
    """CLIPort pick-and-place policy.

    Args:
        config: :class:`CLIPortConfig` (defaults if None).

    See :class:`~vlarm.policies.pick_place.PickPlacePolicy` for ``forward`` / ``select_action``.
    """

    name = "cliport"
    config_class = CLIPortConfig
    uses_language = True

    @property
    def frozen_prefixes(self) -> tuple[str, ...]:  # type: ignore[override]
        """The pretrained backbone is rebuilt on load; a randomly initialised one (tests) must be saved."""
        return ("backbone.",) if self.config.backbone_pretrained else ()

    def __init__(self, config: CLIPortConfig | None = None):
        super().__init__(config or CLIPortConfig())
        cfg = self.config
        from vlarm.vision import load_efficientnet_lite0

        #: The VLM behind the semantic stream (not an nn.Module: its weights live in its own checkpoint).
        self.grounder = None
        backbone = None
        if cfg.grounding_model:
            from vlarm.vlm.grounding import PhraseGrounder

            self.grounder = PhraseGrounder.from_pretrained(
                cfg.grounding_model, crop_size=cfg.grounding_crop_size, template=cfg.grounding_template,
                score=cfg.grounding_score, calibration=cfg.grounding_calibration, vocabulary=cfg.grounding_vocabulary)
            # A LiT model's locked image tower is EfficientNet-Lite0: share it instead of loading a second copy.
            backbone = getattr(self.grounder.model, "visual", None) if cfg.backbone_pretrained else None
            if cfg.text_encoder == "vlm":
                cfg.lang_dim = self.grounder.embed_dim
        if backbone is None:
            backbone = load_efficientnet_lite0(pretrained=cfg.backbone_pretrained)
        self.backbone = backbone.to(memory_format=torch.channels_last)   # faster depthwise convs on the CPU
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        channels = tuple(self.backbone.out_channels)
        grounding_dim = cfg.n_phrases if self.grounder is not None else 0
        self.attention = TwoStream(cfg, channels, 1, grounding_dim)
        self.transport = TwoStream(cfg, channels, 2 * cfg.transport_dim, grounding_dim)
        self._lang_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def resolve_config(cls, config: CLIPortConfig, directory: Path) -> CLIPortConfig:
        """A grounding model stored next to the weights (see :meth:`save_pretrained`) is loaded from there."""
        if config.grounding_model and (Path(directory) / config.grounding_model).is_dir():
            config.grounding_model = str(Path(directory) / config.grounding_model)
        return config

    def save_pretrained(self, directory: str | Path) -> Path:
        """Save as :meth:`Policy.save_pretrained`, plus the grounding model in ``directory/grounding_model``: a
        copy of a local checkpoint, or the model itself when it was built from a name (whose freshly initialised
        heads would otherwise differ at every load), so the policy checkpoint is self-contained."""
        directory = super().save_pretrained(directory)
        if self.grounder is not None:
            source = Path(self.config.grounding_model)
            target = directory / GROUNDING_DIR
            if source.is_dir():
                if not target.exists() or source.resolve() != target.resolve():
                    shutil.rmtree(target, ignore_errors=True)
                    shutil.copytree(source, target)
            else:
                from vlarm.vlm import save_checkpoint

                save_checkpoint(self.grounder.model, target, extra={"built_from": self.config.grounding_model})
            config_path = directory / "config.json"
            data = json.loads(config_path.read_text())
            data["grounding_model"] = GROUNDING_DIR
            config_path.write_text(json.dumps(data, indent=2) + "\n")
        return directory

    @torch.no_grad()
    def grounding_maps(
        self, colormap: torch.Tensor, heightmap: torch.Tensor, instructions: list[str]
    ) -> torch.Tensor | None:
        """``(B, n_phrases, H, W)`` float32 phrase relevance maps from the grounding model (None without one).

        Args:
            colormap: ``(B, H, W, 3)`` uint8.
            heightmap: ``(B, H, W)`` float32 metres.
            instructions: B instructions.
        """
        if self.grounder is None:
            return None
        from vlarm.vlm.grounding import select_phrases

        maps = [
            self.grounder.relevance_maps(c.cpu().numpy(), h.cpu().numpy(), select_phrases(text, self.config.n_phrases))
            for c, h, text in zip(colormap, heightmap, instructions, strict=True)
        ]
        return torch.from_numpy(np.stack(maps)).to(colormap.device)

    def train(self, mode: bool = True) -> CLIPortPolicy:
        """Set training mode; the frozen backbone always stays in eval mode (its BatchNorm statistics are fixed)."""
        super().train(mode)
        self.backbone.eval()
        return self

    @torch.no_grad()
    def frozen_features(self, colormap: torch.Tensor) -> list[torch.Tensor]:
        """EfficientNet-Lite0 maps at strides 2, 4, 8, 16, 32 for ``(B, H, W, 3)`` uint8 colormaps (float32)."""
        return self.backbone(rgb_chw(colormap).contiguous(memory_format=torch.channels_last))

    def embed_instructions(self, instructions: list[str]) -> torch.Tensor:
        """``(B, lang_dim)`` float32 embeddings of B instructions (cached per string); with
        ``config.language_input == "masked"`` each is embedded with its mapped phrases reduced to head nouns
        (:func:`vlarm.vlm.grounding.mask_phrases`)."""
        missing = [t for t in dict.fromkeys(instructions) if t not in self._lang_cache]
        if missing:
            texts = missing
            if self.config.language_input == "masked":
                from vlarm.vlm.grounding import mask_phrases

                texts = [mask_phrases(t, self.config.n_phrases) for t in missing]
            if self.config.text_encoder == "minilm":
                from vlarm.text import load_sentence_encoder

                embs = load_sentence_encoder().encode(texts)
            elif self.config.text_encoder == "vlm":
                embs = self.grounder.encode_texts(texts).numpy()
            else:
                embs = np.stack([hash_embedding(t, self.config.lang_dim) for t in texts])
            for text, emb in zip(missing, embs, strict=True):
                self._lang_cache[text] = torch.as_tensor(np.asarray(emb, dtype=np.float32))
        return torch.stack([self._lang_cache[t] for t in instructions]).to(self.device)

    def prepare(self, batch: dict) -> dict:
        """Network inputs: RGB-D image, language embedding and backbone features (precomputed ones are reused).

        The backbone and the grounding model see ``batch["semantic_colormap"]`` when the batch has one (the true
        colours under colour-permutation augmentation), else ``batch["colormap"]``.
        """
        inputs = super().prepare(batch)
        lang = batch.get("lang_embedding")
        inputs["lang"] = lang if lang is not None else self.embed_instructions(list(batch["instruction"]))
        colormap = batch.get("semantic_colormap", batch["colormap"])
        feats = batch.get("backbone_features")
        inputs["feats"] = [f.float() for f in feats] if feats is not None else self.frozen_features(colormap)
        grounding = batch.get("grounding_maps")
        if grounding is None:
            grounding = self.grounding_maps(colormap, batch["heightmap"], list(batch["instruction"]))
        inputs["grounding"] = grounding.float() if grounding is not None else None
        return inputs

    def attention_features(self, inputs: dict) -> torch.Tensor:
        """``(B, 1, H/2, W/2)`` pick logits."""
        return self.attention(inputs["image"], inputs["feats"], inputs["lang"], inputs["grounding"])

    def transport_features(self, inputs: dict) -> torch.Tensor:
        """``(B, 2 * transport_dim, H/2, W/2)`` key then query features."""
        return self.transport(inputs["image"], inputs["feats"], inputs["lang"], inputs["grounding"])
