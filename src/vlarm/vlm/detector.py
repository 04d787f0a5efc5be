"""Open-vocabulary object localiser for top-down tabletop images, distilled from a dual encoder (ViLD-style).

Gu et al. 2022, "Open-vocabulary Object Detection via Vision and Language Knowledge Distillation" (ViLD),
Sec. 3.3: region embeddings of a detector are trained with an L1 loss to match the teacher VLM's image
embeddings of the same regions' crops, so they can be classified by text embeddings of *any* vocabulary. Here
the "detector" is a small fully convolutional network that gives every pixel of the top-down colour map an
embedding in the teacher's joint space; a region embedding is the normalised mean over a disc around an object
centre. A learned background embedding competes with the query text (ViLD-text's background class, Sec. 3.2),
so ``locate(image, "the red block")`` returns the pixel whose embedding best matches the text.

Images are ``(H, W, 3)`` uint8 top-down colour maps (scene images of :mod:`vlarm.vlm.sim_captions`); pixel
coordinates are ``(row, col)``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from vlarm.vlm.model import DualEncoder


@dataclass
class DetectorConfig:
    """Localiser shape and training settings.

    Attributes:
        embed_dim: teacher joint-space size D.
        width: convolution channels.
        depth: 3x3 convolution layers after the stride-4 stem (dilations 1, 2, 4, ... widen the view).
        region_radius: disc radius in pixels (full resolution) used to pool a region embedding.
        crop_size: teacher crop side in pixels (match the crops the teacher was trained on).
        epochs / lr / batch_size: AdamW training.
        bg_weight: weight of the background term.
        seed: init and batch order.
    """

    embed_dim: int = 256
    width: int = 48
    depth: int = 4
    region_radius: int = 8
    crop_size: int = 48
    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 8
    bg_weight: float = 0.5
    seed: int = 0


class OpenVocabLocalizer(nn.Module):
    """Fully convolutional per-pixel embedder.

    ``forward(images)`` takes ``(B, 3, H, W)`` float RGB in [0, 255] (H, W divisible by 4) and returns
    ``(B, D, H, W)`` L2-normalised pixel embeddings (computed at stride 4 and upsampled bilinearly).
    """

    def __init__(self, cfg: DetectorConfig):
        super().__init__()
        self.config = cfg
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv2d(3, w, 4, stride=4), nn.GELU()]
        for i in range(cfg.depth):
            d = 2 ** (i % 4)
            layers += [nn.Conv2d(w, w, 3, padding=d, dilation=d), nn.GroupNorm(8, w), nn.GELU()]
        layers.append(nn.Conv2d(w, cfg.embed_dim, 1))
        self.net = nn.Sequential(*layers)
        self.background = nn.Parameter(torch.randn(cfg.embed_dim) * 0.02)

    def forward(self, images: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        """See class docstring; ``upsample=False`` returns the stride-4 map ``(B, D, H/4, W/4)`` (training)."""
        emb = self.net((images - 127.5) / 127.5)
        if upsample:
            emb = F.interpolate(emb, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return F.normalize(emb, dim=1)

    def background_embedding(self) -> torch.Tensor:
        """``(D,)`` unit-norm learned background embedding."""
        return F.normalize(self.background, dim=0)


def _disc(h: int, w: int, center: tuple[int, int], radius: int) -> torch.Tensor:
    rows = torch.arange(h)[:, None] - center[0]
    cols = torch.arange(w)[None, :] - center[1]
    return (rows**2 + cols**2) <= radius**2


@torch.no_grad()
def teacher_targets(
    teacher: DualEncoder, transform, images: list[np.ndarray], objects: list[list], crop_size: int
) -> list[torch.Tensor]:
    """Teacher embeddings of crops centred on every object.

    Args:
        teacher: the dual encoder to distil.
        transform: its image transform.
        images: scene colour maps ``(H, W, 3)`` uint8.
        objects: per scene, ``[(colour, kind, (row, col))]``.
        crop_size: crop side in pixels.

    Returns:
        Per scene, a ``(n_objects, D)`` float32 tensor of L2-normalised teacher image embeddings.
    """
    from vlarm.vlm.grounding import crop_centered

    out = []
    for img, objs in zip(images, objects, strict=True):
        crops = torch.stack([transform(crop_centered(img, o[2], crop_size)) for o in objs])
        out.append(teacher.encode_image(crops, normalize=True))
    return out


def distill(
    teacher: DualEncoder,
    transform,
    images: list[np.ndarray],
    objects: list[list],
    config: DetectorConfig | None = None,
    progress: bool = True,
) -> OpenVocabLocalizer:
    """Train a localiser so that region embeddings match the teacher's crop embeddings (ViLD Sec. 3.3).

    Loss per object region: ``|| r - t ||_1`` (ViLD-image) plus a contrastive term that ranks each region's own
    teacher embedding above the other regions' in the batch; background pixels (outside every object's
    disc) are pulled towards the learned background embedding with weight ``bg_weight``.

    Args:
        teacher: frozen dual encoder.
        transform: its image transform (for the crops).
        images: N scene colour maps ``(H, W, 3)`` uint8, H and W divisible by 4.
        objects: per scene, ``[(colour, kind, (row, col))]``.
        config: :class:`DetectorConfig` (``embed_dim`` is taken from the teacher's output).
        progress: show a tqdm bar.

    Returns:
        The trained :class:`OpenVocabLocalizer` in eval mode.
    """
    cfg = config or DetectorConfig()
    targets = teacher_targets(teacher, transform, images, objects, cfg.crop_size)
    cfg = dataclasses.replace(cfg, embed_dim=int(targets[0].shape[1]))
    torch.manual_seed(cfg.seed)
    det = OpenVocabLocalizer(cfg)
    opt = torch.optim.AdamW(det.parameters(), lr=cfg.lr, weight_decay=1e-4)
    x_all = torch.stack([torch.as_tensor(im).permute(2, 0, 1).float() for im in images])
    h, w = x_all.shape[-2:]
    # Losses are computed on the stride-4 map (16x fewer pixels); masks are area-downsampled to match.
    def down(mask: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(mask.float()[:, None], 4)[:, 0]

    masks = [down(torch.stack([_disc(h, w, o[2], cfg.region_radius) for o in objs])) for objs in objects]
    free = [down((~_disc_union(h, w, objs, cfg.region_radius * 3))[None])[0] > 0.99 for objs in objects]
    gen = torch.Generator().manual_seed(cfg.seed)
    steps = cfg.epochs * -(-len(images) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    bar = tqdm(total=steps, desc="distil detector", disable=not progress)
    det.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(images), generator=gen).split(cfg.batch_size):
            emb = det(x_all[idx], upsample=False)  # (B, D, H/4, W/4)
            regions, teach, bg_terms = [], [], []
            for b, i in enumerate(idx.tolist()):
                m = masks[i]  # (n, H/4, W/4) soft masks
                pooled = torch.einsum("dhw,nhw->nd", emb[b], m) / m.sum((1, 2)).clamp(min=1)[:, None]
                regions.append(F.normalize(pooled, dim=-1))
                teach.append(targets[i])
                bg_pix = emb[b][:, free[i]]  # (D, P)
                bg_terms.append((1 - det.background_embedding() @ bg_pix).mean())
            r, t = torch.cat(regions), torch.cat(teach)
            l1 = (r - t).abs().sum(-1).mean()
            logits = 20.0 * r @ t.t()
            contrast = F.cross_entropy(logits, torch.arange(len(r)))
            # Regions must also prefer their teacher embedding over the background.
            bg_logit = 20.0 * (r @ det.background_embedding())[:, None]
            own = 20.0 * (r * t).sum(-1, keepdim=True)
            fg = F.cross_entropy(torch.cat([own, bg_logit], 1), torch.zeros(len(r), dtype=torch.long))
            loss = l1 + contrast + fg + cfg.bg_weight * torch.stack(bg_terms).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return det.eval()


def _disc_union(h: int, w: int, objs, radius: int) -> torch.Tensor:
    out = torch.zeros(h, w, dtype=torch.bool)
    for o in objs:
        out |= _disc(h, w, o[2], radius)
    return out


@torch.no_grad()
def heatmap(det: OpenVocabLocalizer, text_embedding: torch.Tensor, image: np.ndarray) -> torch.Tensor:
    """Per-pixel score of a text query: ``(H, W)`` float, ``cos(e, t) - cos(e, background)``.

    Args:
        det: trained localiser.
        text_embedding: ``(D,)`` L2-normalised text embedding from the teacher (``encode_text``).
        image: ``(H, W, 3)`` uint8 colour map.
    """
    emb = det(torch.as_tensor(image).permute(2, 0, 1).float()[None])[0]
    return torch.einsum("dhw,d->hw", emb, text_embedding) - torch.einsum("dhw,d->hw", emb, det.background_embedding())


@torch.no_grad()
def locate(
    det: OpenVocabLocalizer, teacher: DualEncoder, tokenizer, image: np.ndarray, text: str
) -> tuple[tuple[int, int], float, torch.Tensor]:
    """Find the pixel that best matches ``text`` (e.g. "the red block").

    Returns:
        ``((row, col), score, heatmap (H, W))``; score > 0 means the text beats the background there.
    """
    t = teacher.encode_text(tokenizer([text]), normalize=True)[0]
    hm = heatmap(det, t, image)
    flat = int(hm.argmax())
    return (flat // hm.shape[1], flat % hm.shape[1]), float(hm.max()), hm


@dataclass
class QueryRecord:
    """One text query on one scene: the localiser's best score, whether its argmax hit a matching object, and
    whether the scene holds such an object at all."""

    score: float
    hit: bool
    present: bool


def score_queries(
    det: OpenVocabLocalizer,
    teacher: DualEncoder,
    tokenizer,
    images,
    objects,
    vocabulary,
    hit_radius: int = 12,
    template: str = "the {}",
) -> list[QueryRecord]:
    """Query every scene with every ``"<colour> <kind>"`` phrase of ``vocabulary``.

    Args:
        det: the trained localiser.
        teacher: the dual encoder whose text embeddings query it.
        tokenizer: the teacher's tokenizer.
        images: scene colour maps ``(H, W, 3)`` uint8.
        objects: per scene, ``[(colour, kind, (row, col))]``.
        vocabulary: phrases ``"<colour> <kind>"``.
        hit_radius: pixels; an argmax within this distance of a matching object is a hit.
        template: query text around a phrase.

    Returns:
        ``len(images) * len(vocabulary)`` :class:`QueryRecord` s.
    """
    texts = teacher.encode_text(tokenizer([template.format(v) for v in vocabulary]), normalize=True)
    records = []
    for img, objs in zip(images, objects, strict=True):
        with torch.no_grad():
            emb = det(torch.as_tensor(img).permute(2, 0, 1).float()[None])[0]  # (D, H, W)
            maps = torch.einsum("dhw,vd->vhw", emb, texts) - torch.einsum("dhw,d->hw", emb, det.background_embedding())
        for v, hm in zip(vocabulary, maps, strict=True):
            flat = int(hm.argmax())
            pix = np.array([flat // hm.shape[1], flat % hm.shape[1]])
            matches = [o for o in objs if f"{o[0]} {o[1]}" == v]
            hit = any(np.linalg.norm(pix - np.array(o[2])) <= hit_radius for o in matches)
            records.append(QueryRecord(float(hm.max()), bool(hit), bool(matches)))
    return records


def metrics_at(records: list[QueryRecord], threshold: float = 0.0) -> dict[str, float]:
    """Precision and recall when a query counts as a detection if its score exceeds ``threshold``.

    Recall = hits among detections / queries whose object is present; precision = hits among detections /
    detections; ``accuracy_present`` = top-1 localisation accuracy over present phrases regardless of the score.

    Returns:
        ``{"precision", "recall", "f1", "accuracy_present", "threshold", "n_present", "n_queries"}``.
    """
    detections = [r for r in records if r.score > threshold]
    tp = sum(r.hit for r in detections)
    present = sum(r.present for r in records)
    precision, recall = tp / max(1, len(detections)), tp / max(1, present)
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(1e-12, precision + recall),
        "accuracy_present": sum(r.hit for r in records) / max(1, present),
        "threshold": threshold,
        "n_present": present,
        "n_queries": len(records),
    }


def calibrate_threshold(records: list[QueryRecord]) -> float:
    """The score threshold with the best F1 on (validation) queries: the margin over the background embedding
    that a detection must beat, chosen on held-out data instead of fixed at 0.

    Raises:
        ValueError: if ``records`` is empty.
    """
    if not records:
        raise ValueError("no query records to calibrate on")
    candidates = sorted({r.score for r in records} | {0.0})
    # A threshold just below each observed score admits that score.
    return max(candidates, key=lambda t: (metrics_at(records, t - 1e-6)["f1"], t)) - 1e-6


def save_detector(det: OpenVocabLocalizer, directory: str | Path) -> Path:
    """Save as ``detector.safetensors`` + ``detector_config.json``; returns the directory."""
    from vlarm.weights import save_weights

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(det.state_dict(), directory / "detector.safetensors")
    (directory / "detector_config.json").write_text(json.dumps(dataclasses.asdict(det.config), indent=2) + "\n")
    return directory


def load_detector(directory: str | Path) -> OpenVocabLocalizer:
    """Load a localiser saved by :func:`save_detector`.

    Raises:
        FileNotFoundError: a file is missing (named).
        vlarm.vlm.checkpoint.CheckpointError: a file is corrupt.
    """
    from vlarm.vlm.checkpoint import CheckpointError, load_state_file

    directory = Path(directory)
    cfg_path = directory / "detector_config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no detector config at {cfg_path}")
    try:
        cfg = DetectorConfig(**json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise CheckpointError(f"corrupt detector config {cfg_path}: {err}") from err
    det = OpenVocabLocalizer(cfg)
    det.load_state_dict(load_state_file(directory / "detector.safetensors"))
    return det.eval()
