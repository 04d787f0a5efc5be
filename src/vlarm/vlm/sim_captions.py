"""Image-caption pairs rendered by the simulator, for contrastive pre-training and evaluation.

Each scene holds 2-5 blocks and bowls in palette colours (:mod:`vlarm.tasks.attributes`) at random
collision-free positions on the table; it is rendered by the three CLIPort cameras and fused into the top-down
colour map (320 x 160, 3.125 mm pixels). From each scene we write:

- one *object crop* per object (``crop_size`` pixels square, centred on the object): caption
  ``"a {colour} {kind}"`` (templated);
- one *scene* image (the whole colour map, zero-padded to 320 x 320) captioned with its objects and one spatial relation
  ("the red block is left of the blue bowl").

Spatial words refer to the stored image: "left of" = smaller column (smaller world x), "above" = smaller row
(smaller world y). Splits mirror the benchmark's colour splits (CLIPort, Shridhar et al. 2021, Sec. 4.1):
``seen`` uses TRAIN colours, ``unseen`` the EVAL colours that never appear in TRAIN (orange, purple, pink,
white); ``held_out_combos`` removes chosen colour-object combinations from training so they can be tested as
unseen combinations. Files follow open_clip's CSV convention (tab-separated ``filepath``/``title``), with a
``meta.json`` stating which attributes the captions cover.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vlarm.tasks.attributes import COLORS, EVAL_COLORS, TRAIN_COLORS
from vlarm.vlm.grounding import crop_centered

#: Colours that only occur in the unseen (EVAL) split.
UNSEEN_COLORS: tuple[str, ...] = tuple(c for c in EVAL_COLORS if c not in TRAIN_COLORS)
KINDS: tuple[str, ...] = ("block", "bowl")
#: Colour-object pairs that the standard splits hold out of training (tested as unseen combinations).
HELD_OUT_COMBOS: tuple[tuple[str, str], ...] = (("red", "bowl"), ("cyan", "block"))
CROP_TEMPLATES = ("a {c} {k}", "a {c} {k} on a table", "a top-down view of a {c} {k}", "the {c} {k}")


@dataclass
class CaptionConfig:
    """What to render.

    Attributes:
        n_scenes: number of scenes.
        colors: colour names objects are drawn from.
        kinds: object kinds (``block``, ``bowl``).
        min_objects / max_objects: objects per scene (inclusive).
        crop_size: side of object crops in colour-map pixels (3.125 mm each; a bowl is ~38 px wide).
        camera_scale: camera resolution relative to 480x640 (0.5 renders 4x faster; small holes stay black).
        held_out_combos: ``(colour, kind)`` pairs never generated (for unseen-combination tests).
        only_combos: if non-empty, every scene contains at least one object of these pairs (for such tests).
        seed: the only source of randomness.
    """

    n_scenes: int = 50
    colors: Sequence[str] = TRAIN_COLORS
    kinds: Sequence[str] = KINDS
    min_objects: int = 2
    max_objects: int = 5
    crop_size: int = 48
    camera_scale: float = 0.5
    held_out_combos: Sequence[tuple[str, str]] = ()
    only_combos: Sequence[tuple[str, str]] = ()
    seed: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class Sample:
    """One rendered image with its caption and labels.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        caption: the caption.
        kind: ``"crop"`` or ``"scene"``.
        objects: ``[(colour, kind, (row, col))]`` of the objects the image shows (one for a crop).
    """

    image: np.ndarray
    caption: str
    kind: str
    objects: list


def _sample_layout(rng: np.random.Generator, n: int, min_dist: float = 0.14) -> list[np.ndarray]:
    positions: list[np.ndarray] = []
    for _ in range(500):
        if len(positions) == n:
            break
        xy = np.array([rng.uniform(0.32, 0.68), rng.uniform(-0.42, 0.42)])
        if all(np.linalg.norm(xy - q) >= min_dist for q in positions):
            positions.append(xy)
    return positions


def fill_holes(colormap: np.ndarray) -> np.ndarray:
    """Fill pixels no camera saw (all channels 0) with the nearest seen pixel's colour.

    Args:
        colormap: ``(H, W, 3)`` uint8 fused colour map.

    Returns:
        A filled copy (unchanged if there are no holes or nothing was seen).
    """
    from scipy.ndimage import distance_transform_edt

    holes = ~colormap.any(axis=-1)
    if not holes.any() or holes.all():
        return colormap.copy()
    _, (rows, cols) = distance_transform_edt(holes, return_indices=True)
    return colormap[rows, cols]


def relation(a: tuple, b: tuple, min_gap: int = 20) -> str | None:
    """Spatial word for object ``a`` relative to ``b`` from their ``(row, col)`` pixels, or None if they are
    too close to tell (``min_gap`` pixels). Columns decide left/right, rows above/below; the larger gap wins."""
    dr, dc = a[0] - b[0], a[1] - b[1]
    if max(abs(dr), abs(dc)) < min_gap:
        return None
    if abs(dc) >= abs(dr):
        return "left of" if dc < 0 else "right of"
    return "above" if dr < 0 else "below"


def scene_caption(objects: Sequence[tuple], rng: np.random.Generator) -> str:
    """Caption listing the objects and, when possible, one spatial relation between two of them."""
    names = [f"a {c} {k}" for c, k, _ in objects]
    listing = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    text = f"{listing} on a table"
    order = rng.permutation(len(objects))
    for i in order:
        for j in order:
            if i == j:
                continue
            rel = relation(objects[i][2], objects[j][2])
            if rel is not None:
                (ci, ki, _), (cj, kj, _) = objects[i], objects[j]
                return f"{text}; the {ci} {ki} is {rel} the {cj} {kj}"
    return text


def render_samples(config: CaptionConfig, progress: bool = True) -> list[Sample]:
    """Render ``config.n_scenes`` scenes into object crops and whole-scene samples.

    Returns:
        A list of :class:`Sample`: for each scene, its crops then the scene image.

    Raises:
        ValueError: if no (colour, kind) combination is left after ``held_out_combos``.
    """
    from vlarm.sim import Scene, default_cameras, xyz_to_pixel

    combos = [
        (c, k) for c in config.colors for k in config.kinds if (c, k) not in set(map(tuple, config.held_out_combos))
    ]
    if not combos:
        raise ValueError("no colour-object combination left to render")
    unknown = [c for c in config.colors if c not in COLORS]
    if unknown:
        raise ValueError(f"unknown colours {unknown}; known: {list(COLORS)}")
    rng = np.random.default_rng(config.seed)
    scene = Scene(cameras=default_cameras(config.camera_scale))
    out: list[Sample] = []
    try:
        for _ in tqdm(range(config.n_scenes), desc="render scenes", disable=not progress):
            scene.reset()
            n = int(rng.integers(config.min_objects, config.max_objects + 1))
            layout = _sample_layout(rng, n)
            chosen = [combos[i] for i in rng.integers(0, len(combos), len(layout))]
            if config.only_combos:
                forced = [tuple(x) for x in config.only_combos]
                chosen[0] = forced[int(rng.integers(len(forced)))]
            objects = []
            for (color, kind), xy in zip(chosen, layout, strict=True):
                yaw = float(rng.uniform(0, np.pi / 2))
                quat = (0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2)))
                pose = (np.array([xy[0], xy[1], 0.0]), np.array(quat))
                if kind == "block":
                    scene.add_block(pose, COLORS[color], color)
                else:
                    scene.add_bowl(pose, COLORS[color], color, fixed=True)
                pix = xyz_to_pixel(np.array([xy[0], xy[1], 0.0]))
                objects.append((color, kind, (int(pix[0]), int(pix[1]))))
            cmap = fill_holes(scene.observe().colormap)
            for color, kind, pix in objects:
                template = CROP_TEMPLATES[int(rng.integers(len(CROP_TEMPLATES)))]
                out.append(
                    Sample(
                        crop_centered(cmap, pix, config.crop_size),
                        template.format(c=color, k=kind),
                        "crop",
                        [(color, kind, pix)],
                    )
                )
            # Pad the 320 x 160 map to a square so square-crop transforms keep every object in view.
            pad = (cmap.shape[0] - cmap.shape[1]) // 2
            square = np.pad(cmap, ((0, 0), (pad, cmap.shape[0] - cmap.shape[1] - pad), (0, 0)))
            shifted = [(c, k, (r, col + pad)) for c, k, (r, col) in objects]
            out.append(Sample(square, scene_caption(objects, rng), "scene", shifted))
    finally:
        scene.close()
    return out


def write_caption_csv(samples: Sequence[Sample], out_dir: str | Path, name: str, config: CaptionConfig) -> Path:
    """Write samples as PNGs plus ``{name}.csv`` (open_clip format) and ``{name}.meta.json``.

    The CSV has tab-separated columns ``filepath`` (the image's absolute path, so open_clip's trainer, which
    opens paths as given, finds the images from any working directory), ``title``, ``relpath`` (the path
    relative to the CSV's folder, which vlarm's readers fall back to when the folder was moved), ``kind``,
    ``colors``, ``objects`` ("red block;blue bowl") and ``pixels`` ("row,col;row,col" centres in that image);
    open_clip reads the first two (``--csv-img-key filepath --csv-caption-key title``).

    Args:
        samples: what to write (:func:`render_samples`); images ``(H, W, 3)`` uint8 RGB.
        out_dir: output folder (created); images go to ``out_dir/name/``.
        name: split name, the CSV's stem.
        config: what was rendered (recorded in the meta file).

    Returns:
        The CSV path.

    Raises:
        ValueError: ``samples`` is empty.
    """
    from PIL import Image

    if not samples:
        raise ValueError(f"no samples to write for {name!r}; render at least one scene")
    out_dir = Path(out_dir).resolve()
    img_dir = out_dir / name
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, s in enumerate(samples):
        rel = f"{name}/{i:06d}_{s.kind}.png"
        Image.fromarray(s.image).save(out_dir / rel)
        rows.append(
            {
                "filepath": str(out_dir / rel),
                "title": s.caption,
                "relpath": rel,
                "kind": s.kind,
                "colors": ",".join(sorted({o[0] for o in s.objects})),
                "objects": ";".join(f"{o[0]} {o[1]}" for o in s.objects),
                "pixels": ";".join(f"{o[2][0]},{o[2][1]}" for o in s.objects),
            }
        )
    csv_path = out_dir / f"{name}.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    meta = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "n_samples": len(rows),
        "n_crops": sum(r["kind"] == "crop" for r in rows),
        "colors_in_captions": sorted({c for r in rows for c in r["colors"].split(",") if c}),
        "objects_in_captions": sorted({o for r in rows for o in r["objects"].split(";") if o}),
    }
    (out_dir / f"{name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return csv_path


def read_objects(csv_path: str | Path) -> list[tuple[str, list[tuple[str, str, tuple[int, int]]]]]:
    """Per CSV row, ``(kind, [(colour, object, (row, col))])`` from a CSV written by :func:`write_caption_csv`.

    Raises:
        ValueError: if the CSV lacks the ``objects``/``pixels`` columns (written by an older version).
    """
    with Path(csv_path).open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        rows = list(reader)
    if rows and ("pixels" not in rows[0] or "objects" not in rows[0]):
        raise ValueError(f"{csv_path} has no objects/pixels columns; re-render it with build_caption_splits")
    out = []
    for r in rows:
        objs = []
        for name, pix in zip(r["objects"].split(";"), r["pixels"].split(";"), strict=True):
            colour, kind = name.split(" ", 1)
            row, col = (int(v) for v in pix.split(","))
            objs.append((colour, kind, (row, col)))
        out.append((r["kind"], objs))
    return out


def build_caption_splits(
    out_dir: str | Path,
    n_train: int = 200,
    n_test: int = 40,
    seed: int = 0,
    held_out_combos: Sequence[tuple[str, str]] = HELD_OUT_COMBOS,
    progress: bool = True,
) -> dict[str, Path]:
    """Render the standard splits: ``train`` (TRAIN colours minus held-out combos), ``test_seen`` (same
    attributes, new scenes), ``test_unseen_colors`` (orange, purple, pink, white only) and
    ``test_unseen_combos`` (every scene contains a held-out colour-object pair).

    Returns:
        Split name -> CSV path.
    """
    base = dict(held_out_combos=tuple(held_out_combos))
    plans = {
        "train": CaptionConfig(n_scenes=n_train, seed=seed, **base),
        "test_seen": CaptionConfig(n_scenes=n_test, seed=seed + 1, **base),
        "test_unseen_colors": CaptionConfig(n_scenes=n_test, seed=seed + 2, colors=UNSEEN_COLORS),
        "test_unseen_combos": CaptionConfig(n_scenes=n_test, seed=seed + 3, only_combos=tuple(held_out_combos)),
    }
    return {name: write_caption_csv(render_samples(cfg, progress), out_dir, name, cfg) for name, cfg in plans.items()}
