"""Adversarial training of the VLM's image head at a small budget (2/255), beside the report's 8/255 run.

Same data and settings as ``vlarm trust report --section adversarial`` (train-split crops of 40 scenes, the same
60 test crops, PGD 10 steps), but the head is trained and attacked at 2/255 (and attacked at 4/255)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/trust_defence.py [--eps 2]

Prints one JSON line per head (clean and PGD accuracy with 95% Wilson intervals) and the CPU-minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
from dataclasses import asdict
from pathlib import Path

from vlarm.trust.attacks import robust_accuracy
from vlarm.trust.models import VLMClassifier
from vlarm.trust.report import TrustConfig, _crops, vlm_classes, vlm_path
from vlarm.trust.training import adversarial_fit_head, fit_head, frozen_features, projection_head

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Train zero-shot / plain / adversarial heads and print their clean and PGD accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=int, default=2, help="training budget in grey levels")
    args = parser.parse_args()
    cfg = TrustConfig(checkpoint=str(ROOT / "checkpoints" / "cliport-vlm-put-block-in-bowl"), out="unused")
    path = vlm_path(cfg)
    classes = vlm_classes(path)
    x, y, _, _ = _crops(cfg, classes, cfg.split, max(3, cfg.attack_images // 6))
    x, y = x[: cfg.attack_images], y[: cfg.attack_images]
    xt, yt, _, _ = _crops(cfg, classes, "train", cfg.train_scenes)
    for name in ("zero-shot", "fine-tuned", "adversarially trained"):
        model = VLMClassifier.from_pretrained(path, classes, train_head=name != "zero-shot")
        if name == "fine-tuned":
            fit_head(projection_head(model), frozen_features(model, xt), yt, epochs=20, lr=1e-3, seed=cfg.seed)
        elif name == "adversarially trained":
            adversarial_fit_head(model, xt, yt, args.eps / 255, epochs=5, steps=5, lr=1e-3, seed=cfg.seed)
        for e in (args.eps, 2 * args.eps):
            r = robust_accuracy(model, x, y, "pgd", e / 255, steps=cfg.pgd_steps, seed=cfg.seed)
            print(json.dumps({"head": name, "trained_eps_255": args.eps, **asdict(r), "eps_255": e}), flush=True)
    use = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_minutes": (use.ru_utime + use.ru_stime) / 60}))


if __name__ == "__main__":
    main()
