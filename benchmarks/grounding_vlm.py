"""Pre-train the LiT dual encoder that grounds CLIPort's instructions (issue 3, item 7), and measure it.

Like CLIP's web-scale pre-training, the captions cover every palette colour (ALL_COLORS), including the four
that the put-block-in-bowl *policy* never sees in its seen-colour demonstrations (orange, purple, pink, white):
the point of item 7 is that attribute knowledge comes from the VLM, not from the demonstrations.

1. Renders ``train`` (``--n-train`` scenes, all colours) and ``test`` (``--n-test`` new scenes) caption splits.
2. Trains the LiT model (locked EfficientNet-Lite0 + MiniLM, trained heads) on ``train`` object crops + scenes.
3. Zero-shot classifies ``test`` crops over every "<colour> <object>" class; reports top-1 per colour.
4. Saves the checkpoint (heads only, the towers are rebuilt from their packages) to ``--save``.

Run: ``MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824
HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/grounding_vlm.py``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _report import run_metadata

from vlarm.tasks.attributes import ALL_COLORS
from vlarm.vlm import create_model_and_transforms, save_checkpoint
from vlarm.vlm.data import CsvImageCaptionDataset
from vlarm.vlm.evaluate import classification_metrics, encode_images, zero_shot_classifier
from vlarm.vlm.sim_captions import KINDS, CaptionConfig, render_samples, write_caption_csv
from vlarm.vlm.train import TrainConfig, train

RESULTS = Path(__file__).parent / "vlm_results"
TEMPLATES = ("a {}", "a {} on a table", "a top-down view of a {}", "the {}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("outputs/grounding_captions"))
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--n-test", type=int, default=40)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", type=Path, default=Path("checkpoints/lit-sim-all-colors"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    plans = {
        "train": CaptionConfig(n_scenes=args.n_train, colors=ALL_COLORS, seed=100),
        "test": CaptionConfig(n_scenes=args.n_test, colors=ALL_COLORS, seed=101),
    }
    csvs = {}
    for name, cfg in plans.items():
        path = args.data_dir / f"{name}.csv"
        csvs[name] = path if path.exists() else write_caption_csv(render_samples(cfg), args.data_dir, name, cfg)
    render_seconds = time.time() - t0
    torch.manual_seed(0)
    model, transform, tok = create_model_and_transforms("lit-effnet-minilm", image_size=args.image_size)
    res = train(
        model,
        tok,
        transform,
        CsvImageCaptionDataset(csvs["train"]),
        TrainConfig(epochs=args.epochs, batch_size=64, lr=2e-3, warmup_steps=20, progress=False),
    )
    save_checkpoint(model, args.save, extra={"trained_on": str(csvs["train"]), "colors": list(ALL_COLORS),
                                             "kinds": list(KINDS), "steps": res.steps})
    ds = CsvImageCaptionDataset(csvs["test"])
    rows = [r.strip("\n").split("\t") for r in csvs["test"].read_text().splitlines()[1:]]
    crop_idx = [i for i, r in enumerate(rows) if r[2] == "crop"]
    classes = [f"{c} {k}" for c in ALL_COLORS for k in KINDS]
    labels = torch.tensor([classes.index(rows[i][4]) for i in crop_idx])
    with torch.no_grad():
        feats = encode_images(model, torch.stack([transform(ds[i][0]) for i in crop_idx]))
        logits = feats @ zero_shot_classifier(model, tok, classes, TEMPLATES)
    pred = logits.argmax(1)
    per_colour = {}
    for c in ALL_COLORS:
        mask = torch.tensor([classes[int(y)].split()[0] == c for y in labels])
        per_colour[c] = float((pred[mask] == labels[mask]).float().mean()) if mask.any() else None
    report = {
        "zero_shot": classification_metrics(logits, labels),
        "top1_per_colour": per_colour,
        "n_test_crops": len(crop_idx),
        "train_steps": res.steps,
        "final_loss": res.losses[-1],
        "render_seconds": render_seconds,
        "seconds": time.time() - t0,
        "checkpoint": str(args.save),
        **run_metadata("grounding_vlm.py", args),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "grounding_vlm.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
