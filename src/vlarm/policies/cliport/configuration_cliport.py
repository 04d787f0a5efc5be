"""Configuration of the CLIPort policy (Shridhar, Manuelli, Fox, CoRL 2021)."""

from __future__ import annotations

from dataclasses import dataclass

from vlarm.policies.pick_place import PickPlaceConfig


@dataclass
class CLIPortConfig(PickPlaceConfig):
    """CLIPort hyper-parameters (shared pick/place ones are documented on ``PickPlaceConfig``).

    Attributes:
        image_shape: heightmap ``(H, W)`` pixels (320 x 160).
        n_rotations: place rotation bins (36).
        crop_size: query crop side in pixels (64).
        widths: spatial ("where") stream channels at strides 2, 4, 8, 16.
        transport_dim: key/query feature channels.
        semantic_widths: semantic ("what") decoder channels at strides 2, 4, 8, 16.
        text_encoder: ``"minilm"`` (all-MiniLM-L6-v2 via :func:`vlarm.text.load_sentence_encoder`, 384-d),
            ``"hash"`` (deterministic bag-of-words random projection; no model, for tests and ablations) or
            ``"vlm"`` (the text encoder of ``grounding_model``, its joint-space size).
        lang_dim: instruction embedding size (384 for MiniLM; set from the VLM for ``"vlm"``).
        backbone_pretrained: load ImageNet weights into the frozen EfficientNet-Lite0 (False only for tests).
        grounding_model: a dual encoder (``vlarm.vlm.create_model_and_transforms`` name or path) that becomes
            the semantic stream (issue 3, item 7): its relevance maps of the instruction's referring phrases
            (:class:`vlarm.vlm.grounding.PhraseGrounder`) enter every semantic decoder stage, and a LiT model's
            locked image tower replaces the backbone. Empty: the plain pretrained backbone (CLIPort as built).
            ``save_pretrained`` copies a local checkpoint into the policy's directory, so this is resolved
            relative to the checkpoint directory first.
        n_phrases: relevance maps per instruction (2: what to pick, where to place).
        grounding_fusion: where the relevance maps enter: ``"semantic"`` (the semantic decoder stages only) or
            ``"both"`` (also as extra input channels of the spatial stream, next to RGB-D).
        grounding_score: how proposal cosines become relevance, ``"relative"`` (winner-take-all, issue 3),
            ``"calibrated"`` (``sigmoid(a * cos + b)``) or ``"softmax"`` (each object classified among the phrase
            and ``grounding_vocabulary``), issue 10; see :mod:`vlarm.vlm.grounding`.
        grounding_calibration: ``(a, b)`` of the calibrated score (``benchmarks/calibrate_grounding.py``).
        grounding_vocabulary: contrast phrases of the softmax score.
        grounding_crop_size: proposal crop side in heightmap pixels.
        grounding_template: query text of a phrase.
        language_input: what the language stream reads, ``"instruction"`` (the whole instruction, CLIPort as
            built) or ``"masked"`` (the phrases the relevance maps cover reduced to their head nouns, "put the
            block in the bowl": :func:`vlarm.vlm.grounding.mask_phrases`). Masked, the attribute words reach the
            policy only through the maps, so unseen attribute values read like seen ones (issue 10). Needs a
            ``grounding_model``.

    The ``grounding_*`` settings are stored with the policy (defaults: what policies trained before they existed
    used), so a later change of :class:`~vlarm.vlm.grounding.PhraseGrounder`'s defaults cannot change the maps a
    saved policy sees.
    """

    semantic_widths: tuple[int, ...] = (16, 32, 32, 64)
    text_encoder: str = "minilm"
    lang_dim: int = 384
    backbone_pretrained: bool = True
    grounding_model: str = ""
    n_phrases: int = 2
    grounding_fusion: str = "semantic"
    grounding_score: str = "relative"
    grounding_calibration: tuple[float, float] = (1.0, 0.0)
    grounding_vocabulary: tuple[str, ...] = ()
    grounding_crop_size: int = 48
    grounding_template: str = "a {}"
    language_input: str = "instruction"

    def __post_init__(self) -> None:
        """Validate fields.

        Raises:
            ValueError: on an unknown text encoder, grounding score or language input, or mismatched widths.
        """
        super().__post_init__()
        self.semantic_widths = tuple(int(v) for v in self.semantic_widths)
        if self.text_encoder not in ("minilm", "hash", "vlm"):
            raise ValueError(f"text_encoder must be 'minilm', 'hash' or 'vlm', got {self.text_encoder!r}")
        if self.text_encoder == "vlm" and not self.grounding_model:
            raise ValueError("text_encoder='vlm' needs a grounding_model (a dual-encoder name or checkpoint path)")
        if self.n_phrases < 1:
            raise ValueError(f"n_phrases must be >= 1, got {self.n_phrases}")
        if self.grounding_fusion not in ("semantic", "both"):
            raise ValueError(f"grounding_fusion must be 'semantic' or 'both', got {self.grounding_fusion!r}")
        self.grounding_calibration = tuple(float(v) for v in self.grounding_calibration)
        self.grounding_vocabulary = tuple(str(v) for v in self.grounding_vocabulary)
        if self.grounding_score not in ("relative", "calibrated", "softmax"):
            raise ValueError(f"grounding_score must be 'relative', 'calibrated' or 'softmax', got "
                             f"{self.grounding_score!r}")
        if self.grounding_score == "softmax" and not self.grounding_vocabulary:
            raise ValueError("grounding_score='softmax' needs a grounding_vocabulary of contrast phrases")
        if len(self.semantic_widths) != len(self.widths) or len(self.widths) != 4:
            raise ValueError("widths and semantic_widths must both list 4 stages (strides 2, 4, 8, 16)")
        if self.language_input not in ("instruction", "masked"):
            raise ValueError(f"language_input must be 'instruction' or 'masked', got {self.language_input!r}")
        if self.language_input == "masked" and not self.grounding_model:
            raise ValueError("language_input='masked' removes the attribute words that only relevance maps can "
                             "then carry: it needs a grounding_model (vlarm train --semantic-vlm DIR)")
        if self.text_encoder == "minilm" and self.lang_dim != 384:
            raise ValueError("MiniLM embeddings are 384-d: set lang_dim=384")
