"""ViLD-style open-vocabulary localiser distilled from the LiT dual encoder, on simulator scenes (issue 3,
item 6): precision / recall of finding "the <colour> <object>" on held-out scenes, seen vs unseen colours.

Uses the caption splits rendered by ``benchmarks/vlm_sim.py`` (rendered here if missing). The teacher is the
LiT model with heads trained on the ``train`` captions (TRAIN colours only); the localiser is distilled on the
``train`` scenes and queried with text on ``test_seen`` (TRAIN colours) and ``test_unseen_colors`` (orange,
purple, pink, white: never in the teacher's or the localiser's training data).

The detection threshold (the margin a phrase's score must have over the background embedding) is reported at 0
and calibrated for the best F1 on a separate ``val`` split (TRAIN colours, new scenes). ``--reuse`` evaluates
the teacher and localiser already saved under ``--save`` instead of training them again.

Run: ``MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824
HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vlm_detector.py``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _report import run_metadata

from vlarm.tasks.attributes import TRAIN_COLORS
from vlarm.vlm import create_model_and_transforms, save_checkpoint
from vlarm.vlm.data import CsvImageCaptionDataset
from vlarm.vlm.detector import (
    DetectorConfig,
    calibrate_threshold,
    distill,
    load_detector,
    metrics_at,
    save_detector,
    score_queries,
)
from vlarm.vlm.sim_captions import (
    HELD_OUT_COMBOS,
    KINDS,
    UNSEEN_COLORS,
    CaptionConfig,
    build_caption_splits,
    read_objects,
    render_samples,
    write_caption_csv,
)
from vlarm.vlm.train import TrainConfig, train

RESULTS = Path(__file__).parent / "vlm_results"


def scenes(csv_path: Path) -> tuple[list[np.ndarray], list[list]]:
    """Scene images and their objects ``[(colour, kind, (row, col))]`` from a caption split's CSV."""
    ds = CsvImageCaptionDataset(csv_path)
    rows = read_objects(csv_path)
    keep = [i for i, (kind, _) in enumerate(rows) if kind == "scene"]
    return [ds[i][0] for i in keep], [rows[i][1] for i in keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("outputs/vlm_sim_captions"))
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", type=Path, default=Path("outputs/vlm_detector"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--val-scenes", type=int, default=30)
    ap.add_argument("--reuse", action="store_true", help="evaluate the models saved under --save")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    try:
        read_objects(args.data_dir / "test_unseen_colors.csv")
    except (FileNotFoundError, ValueError):  # missing, or rendered before object pixels were stored
        build_caption_splits(args.data_dir)
    if args.reuse:
        teacher, transform, tok = create_model_and_transforms(args.save / "teacher")
        det = load_detector(args.save / "detector")
        cfg, distill_seconds = det.config, None
    else:
        torch.manual_seed(0)
        teacher, transform, tok = create_model_and_transforms("lit-effnet-minilm", image_size=args.image_size)
        train(
            teacher,
            tok,
            transform,
            CsvImageCaptionDataset(args.data_dir / "train.csv"),
            TrainConfig(epochs=30, batch_size=64, lr=2e-3, warmup_steps=20, progress=False),
        )
        save_checkpoint(teacher, args.save / "teacher", extra={"trained_on": str(args.data_dir / "train.csv")})
        images, objects = scenes(args.data_dir / "train.csv")
        cfg = DetectorConfig(width=32, depth=4, epochs=args.epochs)
        t1 = time.time()
        det = distill(teacher, transform, images, objects, cfg)
        distill_seconds = time.time() - t1
        save_detector(det, args.save / "detector")
    val_csv = args.data_dir / "val.csv"
    if not val_csv.exists():
        val_cfg = CaptionConfig(n_scenes=args.val_scenes, seed=4, held_out_combos=HELD_OUT_COMBOS)
        write_caption_csv(render_samples(val_cfg), args.data_dir, "val", val_cfg)
    seen_vocab = [f"{c} {k}" for c in TRAIN_COLORS for k in KINDS]
    threshold = calibrate_threshold(score_queries(det, teacher, tok, *scenes(val_csv), seen_vocab))
    report = {"distill_seconds": distill_seconds, "config": cfg.__dict__, "calibrated_threshold": threshold}
    for split, colours in (("test_seen", TRAIN_COLORS), ("test_unseen_colors", UNSEEN_COLORS)):
        imgs, objs = scenes(args.data_dir / f"{split}.csv")
        records = score_queries(det, teacher, tok, imgs, objs, [f"{c} {k}" for c in colours for k in KINDS])
        report[split] = {"at_0": metrics_at(records, 0.0), "calibrated": metrics_at(records, threshold)}
        print(split, report[split], flush=True)
    report.update(
        seconds=time.time() - t0,
        **run_metadata("vlm_detector.py", args),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detector.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [
        "# Open-vocabulary localiser distilled from LiT (simulator scenes)",
        "",
        f"Command: `{report['command']}`",
        "",
        "| split | threshold | precision | recall | F1 | top-1 localisation accuracy (present phrases) | queries |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in ("test_seen", "test_unseen_colors"):
        for name, m in report[split].items():
            lines.append(
                f"| {split} | {'0' if name == 'at_0' else f'{threshold:.3f} (val F1)'} | {100 * m['precision']:.1f} | "
                f"{100 * m['recall']:.1f} | {100 * m['f1']:.1f} | {100 * m['accuracy_present']:.1f} | "
                f"{m['n_queries']} ({m['n_present']} present) |"
            )
    lines += [
        "",
        "A query is one '<colour> <object>' phrase ('the {}') per scene over the split's vocabulary; a "
        "detection is the argmax pixel when its score (phrase minus background similarity) beats the threshold; "
        "a hit lies within 12 px (3.75 cm) of a matching object. The calibrated threshold maximises F1 on "
        f"{args.val_scenes} validation scenes (TRAIN colours).",
        "",
        f"Total {report['seconds']:.0f} s"
        + (f" ({distill_seconds:.0f} s distillation)" if distill_seconds else " (evaluation of saved models)")
        + f" on {report['machine']}.",
    ]
    (args.out / "detector.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
