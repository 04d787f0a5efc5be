"""Calibrate CLIPort's VLM grounding on validation scenes: per-object probabilities instead of winner-take-all maps.

Issue 10. The relative relevance map of :mod:`vlarm.vlm.grounding` gives the best-matching object 1 and the others
``exp(s * (cos - max cos))``, so two bowls of the named colour can get 1 and 0.06. Here every (phrase, proposal)
pair of put-block-in-bowl *val* scenes (both variants, so all eleven colours; seeds ``split_seed("val", i)``) is
labelled from the simulator (the proposal's object has the phrase's colour and kind), and a logistic regression
``P(match) = sigmoid(a * cos + b)`` is fitted (Platt scaling). The first ``--scenes`` val scenes of each variant
fit it; the next ``--scenes`` measure the three scores (relative, calibrated, and softmax against every
"<colour> <kind>" phrase of the VLM's training captions) on the instruction's own phrases:

* pair accuracy at 0.5 (a matching object above 0.5, a non-matching one below);
* scene accuracy: every object of the phrase above 0.5 and everything else below (the probe of issue 3).

Test scenes are not read. Usage (writes the JSON that ``vlarm train --grounding-calibration`` takes)::

    python benchmarks/calibrate_grounding.py --vlm checkpoints/lit-sim-all-colors --scenes 40 \\
        --out benchmarks/vlm_results/grounding_calibration.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _report import run_metadata

from vlarm.envs import make_env
from vlarm.tasks.attributes import ALL_COLORS, split_seed
from vlarm.vlm.checkpoint import caption_vocabulary
from vlarm.vlm.grounding import PhraseGrounder, fit_calibration, select_phrases

KINDS = {"blocks": "block", "bowl": "bowl"}


def proposal_objects(labels: np.ndarray, segmentation: np.ndarray, n: int) -> list[int]:
    """The body id covering most of each of the ``n`` proposals (-1 if none)."""
    out = []
    for k in range(1, n + 1):
        ids = segmentation[labels == k]
        ids = ids[ids >= 0]
        out.append(int(np.bincount(ids).argmax()) if len(ids) else -1)
    return out


def scene_pairs(grounder: PhraseGrounder, env, seed: int, phrases: list[str] | None, contrast: list[str] = ()):
    """``(cos, matches, contrast cos, phrases)`` of every (phrase, proposal) pair of one val scene.

    ``phrases=None`` uses the instruction's pick and place phrases; ``contrast`` phrases get cosines only.
    """
    obs, info = env.reset(seed=seed, options={"split": "val"})
    sim = env.unwrapped._sim_obs
    objects = env.unwrapped.scene.objects
    phrases = phrases if phrases is not None else select_phrases(info["instruction"], 2)
    labels, centres, cos = grounder.proposal_similarities(obs["colormap"], obs["heightmap"],
                                                          list(phrases) + list(contrast))
    cos, other = cos[: len(phrases)], cos[len(phrases):]
    bodies = proposal_objects(labels, sim.segmentation, len(centres))
    match = np.zeros(cos.shape, bool)
    for i, phrase in enumerate(phrases):
        colour, noun = phrase.split()[0], phrase.split()[-1]
        for n, body in enumerate(bodies):
            obj = objects.get(body)
            match[i, n] = obj is not None and obj.color == colour and obj.kind == KINDS.get(noun, noun)
    return cos, match, other, phrases


def evaluate_scores(grounder: PhraseGrounder, heldout: list) -> dict:
    """Pair and scene accuracy of ``grounder.score`` at threshold 0.5 on the instruction phrases."""
    pairs_ok, pairs, scenes_ok = 0, 0, 0
    for cos, match, other, phrases in heldout:
        mask = grounder.contrast_mask(phrases) if grounder.score == "softmax" else None
        pred = grounder.scores(cos, other, mask) > 0.5
        pairs_ok += int((pred == match).sum())
        pairs += match.size
        scenes_ok += int((pred == match).all())
    return {"pair_accuracy": 100 * pairs_ok / max(pairs, 1), "scene_accuracy": 100 * scenes_ok / len(heldout),
            "scenes": len(heldout), "pairs": pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vlm", default="checkpoints/lit-sim-all-colors")
    parser.add_argument("--scenes", type=int, default=40, help="val scenes per variant to fit on (and to measure)")
    parser.add_argument("--camera-scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/vlm_results/grounding_calibration.json"))
    args = parser.parse_args()
    t0 = time.time()
    grounder = PhraseGrounder.from_pretrained(args.vlm)
    vocabulary = [f"{c} {k}" for c in ALL_COLORS for k in KINDS]
    contrast = caption_vocabulary(args.vlm)   # what `--grounding-score softmax` uses
    fit_cos, fit_match, heldout = [], [], []
    for variant in ("seen", "unseen"):
        env = make_env(f"put-block-in-bowl-{variant}-colors", split="val", camera_scale=args.camera_scale)
        for i in range(args.scenes):
            cos, match, _, _ = scene_pairs(grounder, env, split_seed("val", i), vocabulary)
            fit_cos.append(cos.ravel())
            fit_match.append(match.ravel())
        for i in range(args.scenes, 2 * args.scenes):
            heldout.append(scene_pairs(grounder, env, split_seed("val", i), None, contrast))
        env.close()
    cos, match = np.concatenate(fit_cos), np.concatenate(fit_match)
    a, b = fit_calibration(cos, match)
    results = {"relative": evaluate_scores(grounder, heldout)}
    grounder.score, grounder.calibration = "calibrated", (a, b)
    results["calibrated"] = evaluate_scores(grounder, heldout)
    grounder.score, grounder.vocabulary = "softmax", tuple(contrast)
    results["softmax"] = evaluate_scores(grounder, heldout)
    report = {"a": a, "b": b, "vlm": args.vlm, "fit_pairs": int(cos.size), "fit_positives": int(match.sum()),
              "fit_scenes": 2 * args.scenes, "heldout_val": results, "softmax_vocabulary": contrast,
              "seconds": time.time() - t0,
              **run_metadata("calibrate_grounding.py", args)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
