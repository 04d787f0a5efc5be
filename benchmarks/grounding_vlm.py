"""Pre-train the LiT dual encoder that grounds CLIPort's instructions (issue 3, item 7), and measure it.

Like CLIP's web-scale pre-training, the captions cover every palette colour (ALL_COLORS), including the four
that the put-block-in-bowl *policy* never sees in its seen-colour demonstrations (orange, purple, pink, white):
the point of item 7 is that attribute knowledge comes from the VLM, not from the demonstrations.

1. Renders ``train`` (``--n-train`` scenes, all colours) and ``test`` (``--n-test`` new scenes) caption splits.
2. Trains the LiT model (locked EfficientNet-Lite0 + MiniLM, trained heads) on ``train`` object crops + scenes.
3. Zero-shot classifies ``test`` crops over every "<colour> <object>" class; reports top-1 per colour.
4. Saves the checkpoint (heads only, the towers are rebuilt from their packages) to ``--save`` (an existing
   checkpoint there is evaluated, not retrained, unless ``--retrain``).
5. Grounding on the benchmark itself: on the first observation of ``--episodes`` put-block-in-bowl test
   episodes per split, is the proposal with the highest relevance (:class:`vlarm.vlm.grounding.PhraseGrounder`)
   for the instruction's first phrase a block of the pick colour, and for its last phrase a bowl of the place
   colour? (Rendered at full CLIPort camera resolution, unlike the half-resolution caption images.)

Run: ``MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824
HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/grounding_vlm.py``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _report import run_metadata

from vlarm.tasks.attributes import ALL_COLORS
from vlarm.vlm import create_model_and_transforms, save_checkpoint
from vlarm.vlm.checkpoint import read_checkpoint_meta
from vlarm.vlm.data import CsvImageCaptionDataset
from vlarm.vlm.evaluate import classification_metrics, encode_images, zero_shot_classifier
from vlarm.vlm.grounding import PhraseGrounder, object_proposals, select_phrases
from vlarm.vlm.sim_captions import KINDS, CaptionConfig, render_samples, write_caption_csv
from vlarm.vlm.train import TrainConfig, train

RESULTS = Path(__file__).parent / "vlm_results"
TEMPLATES = ("a {}", "a {} on a table", "a top-down view of a {}", "the {}")


def benchmark_grounding(grounder: PhraseGrounder, variant: str, episodes: int) -> dict:
    """Top-1 grounding accuracy of the pick and place phrases on put-block-in-bowl test scenes (see step 5)."""
    import gymnasium as gym

    import vlarm.envs  # noqa: F401 - registers the environments
    from vlarm.sim.heightmap import xyz_to_pixel

    env = gym.make(f"vlarm/put-block-in-bowl-{variant}-colors-v0")
    hits = {"pick": 0, "place": 0}
    for i in range(episodes):
        obs, _ = env.reset(seed=10001 + 2 * i, options={"split": "test"})
        scene, text = env.unwrapped.scene, env.unwrapped.instruction
        goal = env.unwrapped.task.parse_instruction(text)
        _, centres = object_proposals(obs["heightmap"])
        maps = grounder.relevance_maps(obs["colormap"], obs["heightmap"], select_phrases(text, 2))
        objects = [(o, xyz_to_pixel(np.array(scene.pose(o.body)[0]))) for o in scene.objects.values()]
        for k, (key, kind) in enumerate((("pick", "block"), ("place", "bowl"))):
            r, c = max(centres, key=lambda rc: maps[k, rc[0], rc[1]])
            nearest = min(objects, key=lambda o: float(np.sum((o[1] - np.array([r, c])) ** 2)))[0]
            hits[key] += nearest.kind == kind and nearest.color == goal[key]
    env.close()
    return {f"{key}_top1": n / episodes for key, n in hits.items()} | {"episodes": episodes}


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
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--retrain", action="store_true")
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
    if args.retrain or not args.save.is_dir():
        torch.manual_seed(0)
        model, transform, tok = create_model_and_transforms("lit-effnet-minilm", image_size=args.image_size)
        res = train(
            model,
            tok,
            transform,
            CsvImageCaptionDataset(csvs["train"]),
            TrainConfig(epochs=args.epochs, batch_size=64, lr=2e-3, warmup_steps=20, progress=False),
        )
        training = {"train_steps": res.steps, "final_loss": res.losses[-1]}
        save_checkpoint(model, args.save, extra={"trained_on": str(csvs["train"]), "colors": list(ALL_COLORS),
                                                 "kinds": list(KINDS), **training})
    else:
        model, transform, tok = create_model_and_transforms(args.save)
        extra = read_checkpoint_meta(args.save)["extra"]
        training = {"train_steps": extra.get("train_steps", extra.get("steps")), "final_loss": extra.get("final_loss")}
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
        **training,
        "benchmark_grounding": {
            split: benchmark_grounding(PhraseGrounder(model, transform, tok), split, args.episodes)
            for split in ("seen", "unseen")
        },
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
