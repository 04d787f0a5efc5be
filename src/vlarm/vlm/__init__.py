"""Vision-language dual encoders: contrastive training, zero-shot, retrieval, probes and few-shot transfer.

Entry point: :func:`create_model_and_transforms` (open_clip's convention). Conventions follow REFERENCE.md
Sec. 6: symmetric InfoNCE with a learnable temperature, template-ensemble zero-shot classifiers,
Recall@K retrieval, logistic-regression linear probes, CoOp / CoCoOp / CLIP-Adapter / Tip-Adapter(-F).
Simulator captions (:mod:`vlarm.vlm.sim_captions`) and the distilled localiser (:mod:`vlarm.vlm.detector`)
import the simulator, so they are not imported here; nor is phrase grounding (:mod:`vlarm.vlm.grounding`,
the VLM semantic stream of CLIPort).
"""

from vlarm.vlm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vlarm.vlm.config import LiTConfig, ScratchConfig, get_model_config, list_models
from vlarm.vlm.evaluate import (
    classification_metrics,
    linear_probe,
    retrieval_metrics,
    zero_shot_classifier,
)
from vlarm.vlm.factory import create_model_and_transforms
from vlarm.vlm.fewshot import METHODS, FewShotConfig, fit_fewshot
from vlarm.vlm.loss import ClipLoss, clamp_logit_scale_
from vlarm.vlm.model import DualEncoder
from vlarm.vlm.train import TrainConfig, train

__all__ = [
    "METHODS",
    "CheckpointError",
    "ClipLoss",
    "DualEncoder",
    "FewShotConfig",
    "LiTConfig",
    "ScratchConfig",
    "TrainConfig",
    "clamp_logit_scale_",
    "classification_metrics",
    "create_model_and_transforms",
    "fit_fewshot",
    "get_model_config",
    "linear_probe",
    "list_models",
    "load_checkpoint",
    "retrieval_metrics",
    "save_checkpoint",
    "train",
    "zero_shot_classifier",
]
