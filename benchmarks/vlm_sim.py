"""Dual encoders on simulator image-caption data: seen vs unseen colours and unseen colour-object combinations.

1. Renders the caption splits of :func:`vlarm.vlm.sim_captions.build_caption_splits` (object crops + whole
   scenes): ``train`` (CLIPort TRAIN colours, minus the held-out pairs red bowl and cyan block), ``test_seen``,
   ``test_unseen_colors`` (orange, purple, pink, white) and ``test_unseen_combos``.
2. Trains the LiT model (locked EfficientNet-Lite0 + MiniLM, trained heads, cached tower features) and the
   from-scratch ViT model on ``train``.
3. Zero-shot classifies test crops over every "<colour> <object>" class of the split (top-1, top-5, mean
   per-class recall) and measures image<->caption Recall@1/5/10 on test scenes.

Run: ``MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824
HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vlm_sim.py``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _report import run_metadata

from vlarm.tasks.attributes import TRAIN_COLORS
from vlarm.vlm import create_model_and_transforms
from vlarm.vlm.data import CsvImageCaptionDataset
from vlarm.vlm.evaluate import (
    classification_metrics,
    encode_images,
    encode_texts,
    retrieval_metrics,
    zero_shot_classifier,
)
from vlarm.vlm.sim_captions import KINDS, UNSEEN_COLORS, build_caption_splits
from vlarm.vlm.train import TrainConfig, train

RESULTS = Path(__file__).parent / "vlm_results"
TEMPLATES = ("a {}", "a {} on a table", "a top-down view of a {}", "the {}")


def evaluate_split(model, transform, tok, csv_path: Path, colors) -> dict:
    """Zero-shot crop classification and scene retrieval on one split."""
    ds = CsvImageCaptionDataset(csv_path)
    rows = [r.strip("\n").split("\t") for r in csv_path.read_text().splitlines()[1:]]
    kinds = [r[2] for r in rows]
    objects = [r[4] for r in rows]
    classes = [f"{c} {k}" for c in colors for k in KINDS]
    crop_idx = [i for i, k in enumerate(kinds) if k == "crop"]
    scene_idx = [i for i, k in enumerate(kinds) if k == "scene"]
    crops = torch.stack([transform(ds[i][0]) for i in crop_idx])
    labels = torch.tensor([classes.index(objects[i]) for i in crop_idx])
    feats = encode_images(model, crops)
    weights = zero_shot_classifier(model, tok, classes, TEMPLATES)
    out = {
        "zero_shot": classification_metrics(feats @ weights, labels),
        "n_crops": len(crop_idx),
        "n_classes": len(classes),
    }
    scenes = torch.stack([transform(ds[i][0]) for i in scene_idx])
    out["retrieval"] = retrieval_metrics(
        encode_images(model, scenes), encode_texts(model, tok, [ds.captions[i] for i in scene_idx])
    )
    out["n_scenes"] = len(scene_idx)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-scenes", type=int, default=120)
    ap.add_argument("--test-scenes", type=int, default=30)
    ap.add_argument("--data-dir", type=Path, default=Path("outputs/vlm_sim_captions"))
    ap.add_argument("--lit-epochs", type=int, default=30)
    ap.add_argument("--scratch-epochs", type=int, default=30)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    if not (args.data_dir / "test_unseen_combos.csv").is_file():
        build_caption_splits(args.data_dir, n_train=args.train_scenes, n_test=args.test_scenes)
    render_seconds = time.time() - t0
    splits = {"test_seen": TRAIN_COLORS, "test_unseen_colors": UNSEEN_COLORS, "test_unseen_combos": TRAIN_COLORS}
    train_ds = CsvImageCaptionDataset(args.data_dir / "train.csv")
    report: dict = {
        "data": json.loads((args.data_dir / "train.meta.json").read_text()),
        "render_seconds": render_seconds,
        "models": {},
    }
    for name, epochs, lr in (
        ("lit-effnet-minilm", args.lit_epochs, 2e-3),
        ("scratch-vit-tiny", args.scratch_epochs, 5e-4),
    ):
        torch.manual_seed(0)
        model, transform, tok = create_model_and_transforms(name, image_size=args.image_size)
        t1 = time.time()
        res = train(
            model,
            tok,
            transform,
            train_ds,
            TrainConfig(epochs=epochs, batch_size=64, lr=lr, warmup_steps=20, progress=True),
        )
        entry = {
            "train_steps": res.steps,
            "final_loss": res.losses[-1],
            "train_seconds": time.time() - t1,
            "pairs_per_second": res.pairs_per_second,
            "cache_seconds": res.cache_seconds,
        }
        for split, colors in splits.items():
            entry[split] = evaluate_split(model, transform, tok, args.data_dir / f"{split}.csv", colors)
            print(name, split, json.dumps(entry[split]["zero_shot"]), flush=True)
        report["models"][name] = entry
    report.update(
        seconds=time.time() - t0,
        **run_metadata("vlm_sim.py", args),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sim_captions.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [
        "# Dual encoders on simulator captions",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Training captions cover colours {report['data']['colors_in_captions']} and objects "
        f"{report['data']['objects_in_captions']} ({report['data']['n_samples']} pairs).",
        "",
        "| model | split | zero-shot top-1 | top-5 | mean per-class recall | image->text R@1 | text->image R@1 |"
        " R@5 (t->i) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["models"].items():
        for split in splits:
            z, r = entry[split]["zero_shot"], entry[split]["retrieval"]
            lines.append(
                f"| {name} | {split} | {100 * z['top1']:.1f} | {100 * z['top5']:.1f} | "
                f"{100 * z['mean_per_class_recall']:.1f} | {100 * r['text_retrieval_recall@1']:.1f} | "
                f"{100 * r['image_retrieval_recall@1']:.1f} | {100 * r['image_retrieval_recall@5']:.1f} |"
            )
    lines += ["", f"Total {report['seconds']:.0f} s ({render_seconds:.0f} s rendering) on {report['machine']}."]
    (args.out / "sim_captions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
