"""What is on the table, from the cameras: object proposals on the fused heightmap, named by a vision-language model.

SayCan's tabletop finds objects with an open-vocabulary detector (ViLD) instead of reading the simulator. Here the
class-agnostic proposals of :mod:`vlarm.vlm.grounding` (connected components of the heightmap above the table) are
refined by height: a block resting in a bowl stands above the bowl's 3 cm walls, so a taller part that covers only
part of a component becomes its own proposal. The kind comes from the geometry (a block's footprint is about 160
pixels, a bowl's about 1,150: proposals under :data:`BLOCK_MAX_AREA` pixels are blocks), and the colour from the VLM:
each proposal's isolated crop is classified zero-shot among the "<colour> <kind>" phrases of its kind (CLIP, Radford
et al. 2021, Sec. 3.1.2), ``p(name | crop) = softmax_j(s * cos_j)``. (The shipped VLM alone mistakes some purple
blocks for purple bowls.) The detected name is the argmax; its probability is the detection confidence the
affordance uses.

Never simulator ground truth: the inputs are the ``(H, W, 3)`` uint8 colour map and ``(H, W)`` float32 heightmap
(metres) fused from the RGB-D cameras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vlarm.sim.heightmap import PIXEL_SIZE, WORKSPACE_BOUNDS, pixel_to_xyz
from vlarm.tasks.saycan_tabletop import PLACES, SAYCAN_COLORS
from vlarm.vlm.grounding import PhraseGrounder, isolated_crops, object_proposals

#: The VLM shipped with vlarm (pre-trained on simulator crops of every palette colour; README).
DEFAULT_VLM = Path(__file__).resolve().parents[3] / "checkpoints" / "lit-sim-all-colors"
KINDS: tuple[str, ...] = ("block", "bowl")
#: Heightmap level above which a part of a proposal is taller than a bowl's walls (bowls are 3 cm), metres.
TALL_HEIGHT = 0.035
#: A tall part covering less than this share of its proposal is split off as its own proposal.
SPLIT_SHARE = 0.7
#: Proposals with fewer pixels than this are blocks (a 4 cm block covers ~164 pixels at 3.125 mm, a 12 cm bowl ~1,150).
BLOCK_MAX_AREA = 600
#: A block this close to a named place is "at" it, metres.
AT_PLACE = 0.06
#: Centres closer than this are "near" each other in the scene description, metres.
NEAR = 0.15


@dataclass
class Detection:
    """One object seen on the table.

    Attributes:
        name: e.g. ``"red block"`` (argmax of the zero-shot classification).
        confidence: its probability in [0, 1].
        probs: every vocabulary name -> probability for this proposal.
        pixel: ``(row, col)`` centre in the heightmap.
        xy: centre in metres (robot frame).
        mask: ``(H, W)`` bool pixels of the proposal.
        inside: the name of the proposal it was split from (a block in a bowl), or ``""``.
    """

    name: str
    confidence: float
    probs: dict[str, float]
    pixel: tuple[int, int]
    xy: tuple[float, float]
    mask: np.ndarray = field(repr=False)
    inside: str = ""


def split_tall_parts(heightmap: np.ndarray, min_area: int = 20) -> tuple[np.ndarray, list[tuple[int, int]], dict]:
    """Object proposals with tall parts split off (see the module docstring).

    Args:
        heightmap: ``(H, W)`` float32 metres above the table.
        min_area: smallest proposal in pixels.

    Returns:
        ``(labels, centres, parent)``: ``(H, W)`` int32 labels (0 = table, 1..N), each proposal's ``(row, col)``
        centre, and ``{child label: parent label}`` for split-off parts.
    """
    labels, _ = object_proposals(heightmap, min_area=min_area)
    tall, tall_centres = object_proposals(heightmap, min_height=TALL_HEIGHT, min_area=min_area)
    out = labels.copy()
    parent = {}
    next_label = int(labels.max()) + 1
    for k in range(1, len(tall_centres) + 1):
        part = tall == k
        owners = np.unique(labels[part])
        owners = owners[owners > 0]
        if len(owners) != 1:
            continue
        whole = labels == owners[0]
        if part.sum() < SPLIT_SHARE * whole.sum() and (whole & ~part).sum() >= min_area:
            out[part] = next_label
            parent[next_label] = int(owners[0])
            next_label += 1
    # relabel consecutively
    final = np.zeros_like(out)
    centres, mapping = [], {}
    for k in np.unique(out):
        if k == 0:
            continue
        mask = out == k
        mapping[int(k)] = len(centres) + 1
        final[mask] = len(centres) + 1
        rows, cols = np.nonzero(mask)
        centres.append((int(round(rows.mean())), int(round(cols.mean()))))
    parent = {mapping[c]: mapping[p] for c, p in parent.items() if c in mapping and p in mapping}
    return final, centres, parent


class Perception:
    """Names the objects on the table with a dual encoder (module docstring).

    Args:
        grounder: a :class:`vlarm.vlm.grounding.PhraseGrounder` (its model, transform, tokenizer, crop size and
            template are used).
        colors: colour words of the vocabulary (default: the colours of SayCan's tabletop objects; like the
            category list SayCan's tabletop gives its open-vocabulary detector, ViLD). With the whole palette, the
            shipped VLM confuses red/brown/orange and blue/cyan on some blocks.
        kinds: object kinds of the vocabulary.
    """

    def __init__(self, grounder: PhraseGrounder, colors: tuple[str, ...] = SAYCAN_COLORS,
                 kinds: tuple[str, ...] = KINDS):
        self.grounder = grounder
        self.vocabulary = [f"{c} {k}" for k in kinds for c in colors]

    @classmethod
    def from_pretrained(cls, path: str | Path = DEFAULT_VLM, **kwargs) -> Perception:
        """Load the VLM at ``path`` (default: the shipped ``checkpoints/lit-sim-all-colors``).

        Raises:
            FileNotFoundError / vlarm.vlm.checkpoint.CheckpointError: a missing or damaged checkpoint.
        """
        return cls(PhraseGrounder.from_pretrained(path), **kwargs)

    @torch.no_grad()
    def detect(self, colormap: np.ndarray, heightmap: np.ndarray) -> list[Detection]:
        """Objects on the table: one name per proposal, each name at most once (:func:`assign_names`).

        Args:
            colormap: ``(H, W, 3)`` uint8 top-down colours.
            heightmap: ``(H, W)`` float32 metres.

        Returns:
            Detections, one per name: blocks first, each kind by confidence (highest first).
        """
        labels, centres, parent = split_tall_parts(np.asarray(heightmap, dtype=np.float32))
        if not centres:
            return []
        g = self.grounder
        crops = torch.stack([g.transform(c) for c in isolated_crops(np.asarray(colormap, np.uint8), labels, centres,
                                                                     g.crop_size)])
        tower = getattr(g.model, "visual", g.model)
        device = next(iter(tower.parameters()), torch.empty(0)).device
        regions = g.model.encode_image(crops.to(device).contiguous(memory_format=torch.channels_last),
                                       normalize=True).float().cpu()
        texts = g.encode_texts([g.template.format(p) for p in self.vocabulary])
        logits = g.model.logit_multiplier * (regions @ texts.t())                                   # (N, V)
        is_block = torch.tensor([int((labels == k + 1).sum()) < BLOCK_MAX_AREA for k in range(len(centres))])
        vocab_block = torch.tensor([p.endswith(" block") for p in self.vocabulary])
        logits = logits.masked_fill(is_block[:, None] != vocab_block[None, :], float("-inf"))   # kind from geometry
        probs = torch.softmax(logits, dim=1).numpy()
        names = assign_names(probs)
        found: dict[int, Detection] = {}
        for k, centre in enumerate(centres):
            j = names.get(k)
            if j is None:
                continue
            xyz = pixel_to_xyz(np.array(centre), None, WORKSPACE_BOUNDS, PIXEL_SIZE)
            found[k] = Detection(self.vocabulary[j], float(probs[k, j]),
                                 dict(zip(self.vocabulary, probs[k].tolist(), strict=True)), centre,
                                 (float(xyz[0]), float(xyz[1])), labels == k + 1)
        for k, det in found.items():
            owner = parent.get(k + 1)
            det.inside = found[owner - 1].name if owner is not None and owner - 1 in found else ""
        return sorted(found.values(), key=lambda d: (not d.name.endswith(" block"), -d.confidence))


def assign_names(probs: np.ndarray) -> dict[int, int]:
    """One name per proposal and one proposal per name (the objects of a scene have distinct colours): the
    assignment maximising the summed log-probability (Hungarian algorithm).

    Args:
        probs: ``(N, V)`` probabilities of proposal n being vocabulary name v (0 where impossible).

    Returns:
        proposal index -> vocabulary index; proposals left without a possible name are absent.
    """
    from scipy.optimize import linear_sum_assignment

    cost = -np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    rows, cols = linear_sum_assignment(cost)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if probs[r, c] > 0}


def describe_scene(detections: list[Detection]) -> str:
    """A one-line description for the planner's prompt: the objects, then where blocks are relative to bowls.

    ``"objects = [red block, blue bowl]; red block in blue bowl"``: a block split off a bowl is "in" it, a block within
    :data:`AT_PLACE` metres of a named place is "at" it, and one whose nearest bowl is within :data:`NEAR` metres is
    "near" it.
    """
    names = [d.name for d in detections]
    relations = []
    bowls = [d for d in detections if d.name.endswith(" bowl")]
    for d in detections:
        if not d.name.endswith(" block"):
            continue
        if d.inside:
            relations.append(f"{d.name} in {d.inside}")
            continue
        place = next((p for p, xy in PLACES.items() if np.hypot(d.xy[0] - xy[0], d.xy[1] - xy[1]) < AT_PLACE), None)
        if place is not None:
            relations.append(f"{d.name} at {place}")
            continue
        dist = [(np.hypot(d.xy[0] - b.xy[0], d.xy[1] - b.xy[1]), b.name) for b in bowls]
        if dist and min(dist)[0] < NEAR:
            relations.append(f"{d.name} near {min(dist)[1]}")
    line = f"objects = [{', '.join(names)}]"
    return line + (f"; {', '.join(relations)}" if relations else "")


__all__ = ["DEFAULT_VLM", "Detection", "Perception", "assign_names", "describe_scene", "split_tall_parts"]
