"""What is on the table, from the cameras: object proposals on the fused heightmap, named by a vision-language model.

SayCan's tabletop finds objects with an open-vocabulary detector (ViLD) instead of reading the simulator. Here the
class-agnostic proposals of :mod:`vlarm.vlm.grounding` (connected components of the heightmap above the table) are
refined by height: a block resting in a bowl stands above the bowl's 3 cm walls, so a taller part that covers only
part of a component becomes its own proposal. Each proposal's isolated crop is then classified zero-shot among every
"<colour> <kind>" phrase (CLIP, Radford et al. 2021, Sec. 3.1.2): ``p(name | crop) = softmax_j(s * cos_j)``. The
detected name is the argmax; its probability is the detection confidence the affordance uses.

Never simulator ground truth: the inputs are the ``(H, W, 3)`` uint8 colour map and ``(H, W)`` float32 heightmap
(metres) fused from the RGB-D cameras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vlarm.sim.heightmap import PIXEL_SIZE, WORKSPACE_BOUNDS, pixel_to_xyz
from vlarm.tasks.attributes import ALL_COLORS
from vlarm.vlm.grounding import PhraseGrounder, isolated_crops, object_proposals

#: The VLM shipped with vlarm (pre-trained on simulator crops of every palette colour; README).
DEFAULT_VLM = Path(__file__).resolve().parents[3] / "checkpoints" / "lit-sim-all-colors"
KINDS: tuple[str, ...] = ("block", "bowl")
#: Heightmap level above which a part of a proposal is taller than a bowl's walls (bowls are 3 cm), metres.
TALL_HEIGHT = 0.035
#: A tall part covering less than this share of its proposal is split off as its own proposal.
SPLIT_SHARE = 0.7
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
        colors: colour words of the vocabulary (default: the whole palette).
        kinds: object kinds of the vocabulary.
    """

    def __init__(self, grounder: PhraseGrounder, colors: tuple[str, ...] = ALL_COLORS,
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
        """Objects on the table, one per proposal, the most confident first for each name (duplicates dropped).

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
        probs = torch.softmax(g.model.logit_multiplier * (regions @ texts.t()), dim=1).numpy()   # (N, V)
        found: dict[str, Detection] = {}
        for k, centre in enumerate(centres):
            j = int(np.argmax(probs[k]))
            name = self.vocabulary[j]
            xyz = pixel_to_xyz(np.array(centre), None, WORKSPACE_BOUNDS, PIXEL_SIZE)
            det = Detection(name, float(probs[k, j]), dict(zip(self.vocabulary, probs[k].tolist(), strict=True)),
                            centre, (float(xyz[0]), float(xyz[1])), labels == k + 1)
            det.inside = str(parent.get(k + 1, ""))
            if name not in found or det.confidence > found[name].confidence:
                found[name] = det
        by_label = {str(k + 1): self.vocabulary[int(np.argmax(probs[k]))] for k in range(len(centres))}
        for det in found.values():
            det.inside = by_label.get(det.inside, "")
        return sorted(found.values(), key=lambda d: (not d.name.endswith(" block"), -d.confidence))


def describe_scene(detections: list[Detection]) -> str:
    """A one-line description for the planner's prompt: the objects, then where blocks are relative to bowls.

    ``"objects = [red block, blue bowl]; red block in blue bowl"``: a block split off a bowl is "in" it; a block whose
    nearest bowl is within :data:`NEAR` metres is "near" it.
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
        dist = [(np.hypot(d.xy[0] - b.xy[0], d.xy[1] - b.xy[1]), b.name) for b in bowls]
        if dist and min(dist)[0] < NEAR:
            relations.append(f"{d.name} near {min(dist)[1]}")
    line = f"objects = [{', '.join(names)}]"
    return line + (f"; {', '.join(relations)}" if relations else "")


__all__ = ["DEFAULT_VLM", "Detection", "Perception", "describe_scene", "split_tall_parts"]
